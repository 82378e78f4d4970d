using System.Diagnostics;
using LoraShell.Core.Lora;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>
/// Packed vs padded training batches on documents of mixed lengths, the shape of a chat set (issue 27): the
/// same documents trained as one per row padded to the window (what a trainer without packing does), packed
/// whole, best-fit, with each document read alone (-Packing Documents, the block-diagonal mask), and cut from
/// one stream (-Packing Stream: no mask, documents see each other and are split across windows). Throughput
/// counts real tokens only (a packed window's padding, at the sampler's mean fill, is not one).
/// </summary>
static partial class Scenarios
{
    static BenchResult Packing(bool quick)
    {
        string modelName = quick ? "stories260K" : "synthetic50M";
        int window = quick ? 64 : 256, rows = 4, steps = quick ? 2 : 6;
        using var model = BenchModels.Load(modelName);
        var loaded = new LoadedModel(model, null, modelName, "bench");
        loaded.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = "all-linear" }, seed: 1);
        loaded.Adapters.MarkTrainable("default");
        model.train();

        // Lengths like a chat set's: log-normal, median about a quarter of the window, from 8 tokens to the window.
        var random = new Random(1);
        var documents = new List<TokenStream>();
        long total = 0;
        while (total < (long)(steps + 1) * rows * window)
        {
            double normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            int length = (int)Math.Clamp(Math.Exp(Math.Log(window / 4.0) + 0.8 * normal), 8, window);
            var ids = Enumerable.Range(0, length).Select(_ => random.Next(3, (int)model.Config.VocabSize)).ToArray();
            documents.Add(new TokenStream(ids, ids.Select((_, i) => i > 0).ToArray()));
            total += length;
        }

        double Step(Tensor inputs, Tensor targets, PackedLayout? packed)
        {
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            var logits = model.Forward(inputs, packed);
            var loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1), ignore_index: BatchSampler.IgnoreIndex);
            loss.backward();
            foreach (var p in model.parameters()) p.grad?.zero_();
            return clock.Elapsed.TotalSeconds;
        }

        // Packed: the trainer's own sampler over the documents back to back.
        double fill = 1;
        double PackedRate(PackingMode mode)
        {
            var sampler = new BatchSampler(TokenStream.Concat(documents), window, seed: 1, mode);
            if (mode == PackingMode.Documents) fill = sampler.FillRatio;
            double seconds = 0, tokens = 0;
            for (int s = 0; s <= steps; s++)
            {
                var (inputs, targets, packed) = sampler.Batch((long)s * rows, rows, CPU);
                double t = Step(inputs, targets, packed);
                if (s > 0) { seconds += t; tokens += inputs.numel() * (mode == PackingMode.Documents ? sampler.FillRatio : 1); } // the first step warms up; padding is not a real token
            }
            return tokens / seconds;
        }

        // Padded: one document per row, padded to the window; pads are not predicted and come after the document, so causal attention needs no mask.
        double PaddedRate()
        {
            double seconds = 0; long tokens = 0;
            for (int s = 0; s <= steps; s++)
            {
                var batch = documents.Skip(s * rows).Take(rows).ToList();
                var inputs = new long[rows * window];
                var targets = Enumerable.Repeat(BatchSampler.IgnoreIndex, rows * window).ToArray();
                for (int r = 0; r < rows; r++)
                    for (int t = 0; t < batch[r].Length; t++)
                    {
                        inputs[r * window + t] = batch[r].Tokens[t];
                        if (t + 1 < batch[r].Length) targets[r * window + t] = batch[r].Tokens[t + 1];
                    }
                double time = Step(tensor(inputs, new long[] { rows, window }), tensor(targets, new long[] { rows, window }), null);
                if (s > 0) { seconds += time; tokens += batch.Sum(d => (long)d.Length); }
            }
            return tokens / seconds;
        }

        double padded = PaddedRate(), documentsRate = PackedRate(PackingMode.Documents), stream = PackedRate(PackingMode.Stream);
        var r = new BenchResult { Scenario = "train-packing-synthetic50M-mixed-lengths" };
        r.Metrics["padded_tokens_per_s"] = padded;
        r.Metrics["packed_documents_tokens_per_s"] = documentsRate;
        r.Metrics["packed_stream_tokens_per_s"] = stream;
        r.Metrics["packed_documents_over_padded"] = documentsRate / padded;
        r.Metrics["packed_documents_over_stream"] = documentsRate / stream;
        r.Metrics["packed_documents_fill"] = fill;
        var lengths = documents.Select(d => d.Length).OrderBy(l => l).ToList();
        r.Settings["model"] = $"{modelName} ({model.Config.ParameterCount:N0} params), LoRA r8 all-linear, forward + backward";
        r.Settings["batch x window"] = $"{rows} x {window}, {steps} timed steps after one warm-up";
        r.Settings["documents"] = $"{documents.Count} of {lengths[0]}..{lengths[^1]} tokens (median {lengths[lengths.Count / 2]}, log-normal like a chat set)";
        r.Settings["throughput"] = "real tokens per second: a padded row counts its document only";
        return r;
    }
}
