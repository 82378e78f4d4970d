using System.Diagnostics;
using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// Sentence classification with the same methods, optimizer and schedule as language modelling: a
/// <see cref="ClassificationHead"/> reads the final hidden state of each sentence's last token (for
/// Ladder, the backbone's plus the side network's), trains with the method's parameters, and is judged
/// by validation accuracy. Batches are seeded draws without replacement, reshuffled every epoch.
/// </summary>
public static class ClassificationTrainer
{
    public const string ClassifierFolder = "classifier";

    internal static TrainingResult Run(LoadedModel loaded, TrainingOptions o, IProgress<TrainingProgress>? progress, CancellationToken cancel, Action<string>? log)
    {
        if (o.Resume || o.CheckpointEvery > 0)
            throw LoraShellException.InvalidArgument("ClassificationCheckpoints", "Checkpoints and -Resume are not available for classification training yet; train without -CheckpointEvery and -Resume.", o.CheckpointEvery);
        var tokenizer = loaded.RequireTokenizer();
        var model = loaded.Model;
        string? output = o.OutputPath is null ? null : Path.GetFullPath(o.OutputPath);
        if (output != null) Trainer.EnsureWritable(output);

        var data = ClassificationData.Load(o.DataPaths, o.ValidationPaths, o.ValidationFraction, tokenizer, o.SequenceLength);
        var fisherData = TokenStream.Concat(data.Train.Take(4096).Select(e => new TokenStream(e.Tokens, Enumerable.Repeat(true, e.Tokens.Length).ToArray())));
        string? adapter = Trainer.PrepareMethod(loaded, o, fisherData, log);
        var side = o.Method == TrainingMethod.Ladder ? loaded.SideNetwork : null;
        manual_seed(o.Seed);
        using var head = new ClassificationHead(model.Config.HiddenSize, data.Labels.Count);
        head.to(model.Device);
        var trainable = Trainer.TrainableOf(model, side).Concat(head.named_parameters().Select(p => (name: $"head.{p.name}", parameter: p.parameter))).ToList();
        var hidden = Trainer.HiddenStatesOf(model, side);
        var validation = o.MaxEvalWindows > 0 ? data.Validation.Take(o.MaxEvalWindows).ToList() : data.Validation.ToList();
        log?.Invoke($"Data: {data.Train.Count:N0} training and {validation.Count:N0} validation sentences, labels {string.Join(", ", data.Labels)}.");

        int rowsPerStep = o.BatchSize * o.GradientAccumulationSteps;
        int totalSteps = o.MaxSteps ?? Math.Max(1, (int)Math.Ceiling(o.Epochs!.Value * data.Train.Count / rowsPerStep));
        var schedule = new LearningRateSchedule(o.LearningRate, o.WarmupSteps, totalSteps, o.MinLearningRateRatio);
        using var optimizer = new AdamW(trainable.Select(p => (p.name, p.parameter)), o.Beta1, o.Beta2, o.AdamEpsilon, o.WeightDecay);
        string? metricsPath = output is null ? null : Path.Combine(output, Trainer.MetricsFile);
        if (metricsPath != null) File.WriteAllText(metricsPath, "");

        var evaluations = new List<EvalRecord>();
        var (loss0, accuracy0) = Evaluate(hidden, head, validation, o.BatchSize, model.Device);
        evaluations.Add(new EvalRecord(0, loss0, accuracy0));
        Trainer.AppendMetrics(metricsPath, new { step = 0, val_loss = loss0, val_accuracy = accuracy0 });

        var order = new Shuffler(data.Train.Count, o.Seed);
        var losses = new List<double>();
        var stepTimes = new List<double>();
        long tokensSeen = 0;
        bool cancelled = false;
        int step = 0;
        MemoryMeter.ResetPeak();
        double startMemory = MemoryMeter.CurrentMiB;
        var clock = Stopwatch.StartNew();
        model.train(); side?.train(); head.train();
        try
        {
            for (; step < totalSteps; step++)
            {
                if (cancel.IsCancellationRequested) { cancelled = true; break; }
                var stepClock = Stopwatch.StartNew();
                double lr = schedule.At(step), lossSum = 0;
                for (int micro = 0; micro < o.GradientAccumulationSteps; micro++)
                {
                    using var scope = NewDisposeScope();
                    var batch = order.Next(o.BatchSize).Select(i => data.Train[i]).ToList();
                    var (ids, lengths, labels) = Collate(batch, model.Device);
                    var loss = nn.functional.cross_entropy(head.call(hidden(ids), lengths).to(ScalarType.Float32), labels);
                    (loss / (double)o.GradientAccumulationSteps).backward();
                    lossSum += loss.item<float>();
                    tokensSeen += batch.Sum(e => e.Tokens.Length);
                }
                double stepLoss = lossSum / o.GradientAccumulationSteps;
                if (!double.IsFinite(stepLoss))
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "NonFiniteLoss", $"The training loss became {stepLoss} at step {step + 1}; lower -LearningRate or add -WarmupSteps.", step + 1);
                if (o.MaxGradNorm > 0) using (NewDisposeScope()) nn.utils.clip_grad_norm_(optimizer.Parameters, o.MaxGradNorm); // grad handles die here
                optimizer.Step(lr);
                optimizer.ZeroGrad();
                losses.Add(stepLoss);
                double seconds = stepClock.Elapsed.TotalSeconds;
                stepTimes.Add(seconds * 1000);

                double? validationLoss = null, accuracy = null;
                bool last = step + 1 == totalSteps;
                if (last || (o.EvalEvery > 0 && (step + 1) % o.EvalEvery == 0))
                {
                    var (l, a) = Evaluate(hidden, head, validation, o.BatchSize, model.Device);
                    (validationLoss, accuracy) = (l, a);
                    evaluations.Add(new EvalRecord(step + 1, l, a));
                    model.train(); side?.train(); head.train();
                }
                Trainer.AppendMetrics(metricsPath, new { step = step + 1, loss = stepLoss, lr, elapsed_s = clock.Elapsed.TotalSeconds, val_loss = validationLoss, val_accuracy = accuracy });
                var remaining = TimeSpan.FromSeconds(stepTimes.TakeLast(20).Average() / 1000 * (totalSteps - step - 1));
                progress?.Report(new TrainingProgress(step + 1, totalSteps, stepLoss, lr, tokensSeen / clock.Elapsed.TotalSeconds, clock.Elapsed, remaining, validationLoss));
            }
        }
        finally { model.eval(); side?.eval(); head.eval(); }

        string? adapterPath = null, modelPath = null, sidePath = null, headPath = null;
        if (output != null && !cancelled)
        {
            (adapterPath, modelPath, sidePath) = Trainer.SaveTrained(loaded, o.Method, output, adapter);
            headPath = Path.Combine(output, ClassifierFolder);
            Directory.CreateDirectory(headPath);
            SafetensorsWriter.Write(Path.Combine(headPath, "score.safetensors"), new[] { KeyValuePair.Create("score.weight", head.score.weight!.detach()) });
            AtomicFile.WriteAllText(Path.Combine(headPath, "labels.json"), JsonSerializer.Serialize(new { labels = data.Labels, pooling = "last_token" }));
        }
        var final = evaluations[^1].Step == step && step > 0 ? evaluations[^1] : null;
        var result = new TrainingResult
        {
            Method = o.Method.ToString(), Model = loaded.Name, Task = nameof(TrainingTask.Classification), Steps = step, TotalSteps = totalSteps,
            BatchSize = o.BatchSize, SequenceLength = o.SequenceLength, GradientAccumulationSteps = o.GradientAccumulationSteps, LearningRate = o.LearningRate, Seed = o.Seed,
            Losses = losses, Evaluations = evaluations, InitialValidationLoss = loss0, FinalValidationLoss = final?.Loss,
            Labels = data.Labels, InitialValidationAccuracy = accuracy0, FinalValidationAccuracy = final?.Accuracy,
            TrainableParameters = trainable.Sum(p => p.parameter.numel()), TotalParameters = model.parameters().Sum(p => p.numel()) + head.parameters().Sum(p => p.numel()),
            MillisecondsPerStep = stepTimes.Count == 0 ? 0 : Trainer.Median(stepTimes), TokensPerSecond = stepTimes.Count == 0 ? 0 : tokensSeen / (stepTimes.Sum() / 1000),
            PeakMemoryMiB = MemoryMeter.PeakMiB, StartMemoryMiB = startMemory, Seconds = clock.Elapsed.TotalSeconds, TrainingTokens = tokensSeen,
            Cancelled = cancelled, OutputPath = output, AdapterPath = adapterPath, ModelPath = modelPath, SideNetworkPath = sidePath, ClassifierPath = headPath,
            MetricsPath = metricsPath, GateValues = side?.GateValues(),
        };
        if (output != null) AtomicFile.WriteAllText(Path.Combine(output, "result.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        return result;
    }

    /// <summary>Right-padded token ids [batch, longest], lengths [batch] and labels [batch].</summary>
    public static (Tensor Ids, Tensor Lengths, Tensor Labels) Collate(IReadOnlyList<LabeledSequence> batch, Device device)
    {
        int longest = batch.Max(e => e.Tokens.Length);
        var ids = new long[batch.Count * longest];
        for (int b = 0; b < batch.Count; b++)
            for (int t = 0; t < batch[b].Tokens.Length; t++) ids[b * longest + t] = batch[b].Tokens[t];
        return (tensor(ids, new long[] { batch.Count, longest }).to(device),
            tensor(batch.Select(e => (long)e.Tokens.Length).ToArray()).to(device),
            tensor(batch.Select(e => (long)e.Label).ToArray()).to(device));
    }

    /// <summary>Mean cross-entropy and accuracy over the examples.</summary>
    public static (double Loss, double Accuracy) Evaluate(Func<Tensor, Tensor> hidden, ClassificationHead head, IReadOnlyList<LabeledSequence> examples, int batchSize, Device device)
    {
        if (examples.Count == 0) return (double.NaN, double.NaN);
        double lossSum = 0;
        long correct = 0;
        using var _ = no_grad();
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = examples.Skip(start).Take(batchSize).ToList();
            var (ids, lengths, labels) = Collate(batch, device);
            var logits = head.call(hidden(ids), lengths).to(ScalarType.Float32);
            lossSum += nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(labels).sum().item<long>();
        }
        return (lossSum / examples.Count, correct / (double)examples.Count);
    }

    /// <summary>Seeded draws without replacement; a new permutation each epoch.</summary>
    sealed class Shuffler(int count, long seed)
    {
        readonly Random _random = new((int)(seed ^ (seed >> 32)));
        int[] _order = Array.Empty<int>();
        int _next;

        public IEnumerable<int> Next(int n)
        {
            var picked = new List<int>(n);
            while (picked.Count < n)
            {
                if (_next >= _order.Length) { _order = Enumerable.Range(0, count).ToArray(); _random.Shuffle(_order); _next = 0; }
                picked.Add(_order[_next++]);
            }
            return picked;
        }
    }
}
