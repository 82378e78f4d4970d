using System.Text.Json.Nodes;
using LoraShell.Core.Lora;
using LoraShell.Core.Models.T5;
using LoraShell.Core.Session;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Experiments;

/// <summary>One method of the text-to-text comparison: its costs (as the decoder-only comparison reports them), its share of the model trained and its accuracy by generation.</summary>
public sealed record TextToTextResult(MethodCost Cost, double TrainableShare, double? AccuracyBefore, double? AccuracyAfter);

/// <summary>
/// The LST paper's comparison on its own architecture, at notebook scale (notebooks/02-ladder-side-tuning.ipynb
/// and samples/02-ladder-side-tuning.cs): a small random-initialised T5 trained text-to-text on SST-2
/// ("sst2 sentence: …" → "positive"/"negative", scored by generation as the T5 paper does) by full fine-tuning,
/// LoRA (r 8 on q and v, PEFT's T5 default) and Ladder side-tuning beside both stacks, on the same data, steps and seed.
/// </summary>
public static class T5Experiments
{
    /// <summary>The T5 trained here: t5's layout (relu, tied head) at 4 + 4 blocks of width 128, over the 512-token llama2.c vocabulary.</summary>
    public static T5Config SmallT5 => new()
    {
        VocabSize = 512, DModel = 128, DKv = 32, DFf = 512, NumLayers = 4, NumDecoderLayers = 4, NumHeads = 4,
        RelativeAttentionNumBuckets = 32, RelativeAttentionMaxDistance = 128, EosTokenId = 2, PadTokenId = 0, DecoderStartTokenId = 0,
    };

    /// <summary>SST-2 sentences of a split as text-to-text JSONL: the first <paramref name="count"/> of the file.</summary>
    public static string WriteSst2(string sharedFolder, string folder, string split, int count)
    {
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, $"sst2-{split}.jsonl");
        File.WriteAllLines(path, File.ReadLines(Path.Combine(sharedFolder, "data", "sst2", $"{split}.tsv")).Skip(1).Take(count).Select(line =>
        {
            int tab = line.LastIndexOf('\t');
            return new JsonObject { ["input"] = "sst2 sentence: " + line[..tab].Trim(), ["target"] = line[(tab + 1)..].Trim() == "1" ? "positive" : "negative" }.ToJsonString();
        }));
        return path;
    }

    /// <summary>
    /// Full vs LoRA vs Ladder (reduction <paramref name="reductionFactor"/>, magnitude-pruned) from one random T5
    /// written to <paramref name="folder"/>: trainable parameters and share, peak and training memory, time per
    /// step, validation loss and accuracy by generation before and after.
    /// </summary>
    public static List<TextToTextResult> Compare(ExperimentSetup setup, string folder, int trainExamples = 4000, int validationExamples = 256,
        int reductionFactor = 4, Action<string>? log = null)
    {
        string model = Path.Combine(folder, "t5-random");
        manual_seed(setup.Seed);
        using (var t5 = new T5ForConditionalGeneration(SmallT5)) T5Writer.Save(t5, model, overwrite: true, new[] { setup.TokenizerPath });
        var options = new TrainingOptions
        {
            DataPaths = new[] { WriteSst2(setup.SharedFolder, folder, "train", trainExamples) },
            ValidationPaths = new[] { WriteSst2(setup.SharedFolder, folder, "validation", validationExamples) },
            MaxSteps = setup.Steps, BatchSize = setup.BatchSize, SequenceLength = setup.SequenceLength, WarmupSteps = Math.Max(1, setup.Steps / 20),
            Seed = setup.Seed, TrimMemoryEachStep = true, // each run's memory growth is its own
        };
        var rows = new List<TextToTextResult>();
        TextToTextResult Run(string name, TrainingOptions o, Action<LoadedModel>? prepare = null)
        {
            log?.Invoke(name);
            using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = model });
            prepare?.Invoke(loaded);
            var r = Trainer.Run(loaded, o);
            var cost = new MethodCost(name, r.TrainableParameters, r.PeakMemoryMiB, r.PeakMemoryMiB - r.StartMemoryMiB, r.MillisecondsPerStep,
                r.InitialValidationLoss, r.FinalValidationLoss, r.GateValues);
            return new TextToTextResult(cost, (double)r.TrainableParameters / r.TotalParameters, r.InitialValidationAccuracy, r.FinalValidationAccuracy);
        }
        rows.Add(Run("full", options with { Method = TrainingMethod.Full, LearningRate = setup.FullLearningRate }));
        rows.Add(Run("lora q,v r=8", options with { Method = TrainingMethod.Lora, LearningRate = setup.LoraLearningRate },
            m => m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q", "v" } }, setup.Seed)));
        rows.Add(Run($"ladder k={reductionFactor}", options with
        {
            Method = TrainingMethod.Ladder, LearningRate = setup.LoraLearningRate, Ladder = new LadderConfig { ReductionFactor = reductionFactor, Init = LadderInit.Magnitude },
        }));
        return rows;
    }

    /// <summary>
    /// The paper's setting in memory: T5-base trained text-to-text at batch 100 (inputs of 128 tokens, targets of
    /// 4), Full vs LoRA (q, v) vs Ladder (k 8, every layer), estimated by <see cref="Memory.T5MemoryEstimator"/>
    /// (checked against measured runs): trainable share, total memory and the share Full needs that each saves.
    /// </summary>
    public static List<(string Method, double TrainableShare, double TotalGB, double SavedVsFull)> PaperSettingMemory()
    {
        var c = Memory.ModelPresets.EncoderDecoder["t5-base"];
        var o = new Memory.MemoryEstimateOptions { BatchSize = 100, SequenceLength = 128, TargetLength = 4, LoraTargets = new[] { "q", "v" }, ReductionFactor = 8 };
        var estimates = new[] { TrainingMethod.Full, TrainingMethod.Lora, TrainingMethod.Ladder }
            .Select(m => Memory.T5MemoryEstimator.Estimate(c, o with { Method = m }, "t5-base")).ToList();
        double full = estimates[0].TotalBytes;
        return estimates.Select(e => (e.Method.ToString(), (double)e.TrainableParameters / e.Parameters, e.TotalBytes / Memory.MemoryEstimate.GB, 1 - e.TotalBytes / full)).ToList();
    }
}
