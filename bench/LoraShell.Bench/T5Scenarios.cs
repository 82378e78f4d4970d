using System.Text.Json.Nodes;
using LoraShell.Core.Models.T5;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>
/// The LST paper's memory comparison on the architecture it used: T5 (here t5-small's shape, random weights,
/// fp32) trained text-to-text on SST-2 ("sst2 sentence: …" → "positive"/"negative") at batch 16, with
/// Full fine-tuning, LoRA (r 8, q and v: PEFT's T5 default, as the paper's LoRA baseline) and Ladder
/// side-tuning (k 8, every layer of both stacks). Peak RSS with the memory trimmed each step, as the
/// decoder-only memory scenarios measure it.
/// </summary>
static partial class Scenarios
{
    public static IEnumerable<KeyValuePair<string, Func<bool, BenchResult>>> T5Scenarios()
    {
        foreach (var method in new[] { "full", "lora", "ladder" })
            yield return KeyValuePair.Create<string, Func<bool, BenchResult>>($"train-memory-t5small-{method}-b16", quick => T5Memory(method, quick));
    }

    /// <summary>t5-small's shape (d_model 512, 6 + 6 blocks, 8 heads, d_ff 2048, vocabulary 32,128, relu, tied head).</summary>
    static T5Config T5Small(bool quick) => quick
        ? new T5Config { VocabSize = 512, DModel = 64, DKv = 8, DFf = 128, NumLayers = 2, NumDecoderLayers = 2, NumHeads = 8, EosTokenId = 2 }
        : new T5Config { VocabSize = 32128, DModel = 512, DKv = 64, DFf = 2048, NumLayers = 6, NumDecoderLayers = 6, NumHeads = 8, EosTokenId = 2 };

    static BenchResult T5Memory(string method, bool quick)
    {
        string shared = BenchModels.SharedRoot();
        LoraShell.Core.IO.NativeMemory.MapLargeAllocations();
        using (var warm = ones(64, 64)) warm.matmul(warm).Dispose(); // libtorch loaded and its thread pool up
        LoraShell.Core.IO.NativeMemory.Trim();
        double runtimeMiB = MemoryMeter.CurrentMiB;

        string data = Path.Combine(Path.GetTempPath(), $"lorashell-bench-sst2-{Environment.ProcessId}.jsonl");
        File.WriteAllLines(data, File.ReadLines(Path.Combine(shared, "data", "sst2", "train.tsv")).Skip(1).Take(2000).Select(line =>
        {
            int tab = line.LastIndexOf('\t');
            return new JsonObject { ["input"] = "sst2 sentence: " + line[..tab].Trim(), ["target"] = line[(tab + 1)..] == "1" ? "positive" : "negative" }.ToJsonString();
        }));
        try
        {
            manual_seed(1);
            var config = T5Small(quick);
            var model = new T5ForConditionalGeneration(config);
            var tokenizer = LoraShell.Core.Tokenizers.Llama2cTokenizer.Load(Path.Combine(shared, "models", "stories260K", "tok512.bin"));
            using var loaded = new LoadedModel(model, tokenizer, "t5-small-shape", "bench");
            if (method == "lora") loaded.Adapters.Add("default", new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q", "v" } }, seed: 1);
            var options = new TrainingOptions
            {
                Method = method switch { "full" => TrainingMethod.Full, "lora" => TrainingMethod.Lora, _ => TrainingMethod.Ladder },
                DataPaths = new[] { data }, ValidationFraction = 0.01, MaxEvalWindows = 16, MaxSteps = quick ? 2 : 6,
                BatchSize = quick ? 2 : 16, SequenceLength = 128, LearningRate = 1e-4, Seed = 1,
                TrimMemoryEachStep = true, // peak RSS of live memory, not the allocator's high-water mark
                Ladder = new LoraShell.Core.SideTuning.LadderConfig { ReductionFactor = 8, Init = LoraShell.Core.SideTuning.LadderInit.Random },
            };
            var t = Trainer.Run(loaded, options);
            var r = new BenchResult { Scenario = $"train-memory-t5small-{method}-b16" };
            r.Metrics["peak_mib"] = t.PeakMemoryMiB;
            r.Metrics["runtime_mib"] = runtimeMiB;
            r.Metrics["model_mib"] = t.PeakMemoryMiB - runtimeMiB;
            r.Metrics["training_mib"] = t.PeakMemoryMiB - t.StartMemoryMiB;
            r.Metrics["ms_per_step"] = t.MillisecondsPerStep;
            r.Metrics["trainable_params"] = t.TrainableParameters;
            r.Metrics["total_params"] = t.TotalParameters;
            r.Settings["run"] = $"{t.Steps} steps, batch {options.BatchSize}, inputs up to {options.SequenceLength} tokens, SST-2 text-to-text, {(quick ? "tiny T5" : "t5-small shape")}";
            return r;
        }
        finally { File.Delete(data); }
    }
}
