using LoraShell.Core.Memory;
using LoraShell.Core.Models.T5;
using LoraShell.Core.Session;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;

namespace LoraShell.Core.Tests;

/// <summary>The T5 memory estimate: its parameter counts are the real modules', its presets are the published shapes, bad requests are refused.</summary>
public class T5MemoryEstimatorTests
{
    static readonly T5Config Small = new() { VocabSize = 512, DModel = 64, DKv = 16, DFf = 128, NumLayers = 2, NumDecoderLayers = 3, NumHeads = 4, GatedFeedForward = true, DenseActivation = "gelu_new", TieWordEmbeddings = false };

    [Fact]
    public void Parameter_counts_match_the_real_modules()
    {
        using var model = new T5ForConditionalGeneration(Small);
        Assert.Equal(model.parameters().Sum(p => p.numel()), T5MemoryEstimator.Parameters(Small));
        var relu = Small with { GatedFeedForward = false, DenseActivation = "relu", TieWordEmbeddings = true };
        using (var tied = new T5ForConditionalGeneration(relu)) Assert.Equal(tied.parameters().Sum(p => p.numel()), T5MemoryEstimator.Parameters(relu));

        var adapters = new Lora.LoraAdapterSet(model);
        adapters.Add("a", new Lora.LoraConfig { R = 4, TargetModules = new[] { "q", "v", "wi_0", "wo" } }, seed: 1);
        Assert.Equal(adapters.Info("a").TrainableParameters, T5MemoryEstimator.LoraParameters(Small, 4, new[] { "q", "v", "wi_0", "wo" }));

        foreach (var layers in new[] { null, new[] { 1 } })
        {
            using var side = new T5LadderSideNetwork(new LadderConfig { ReductionFactor = 2, SideLayers = layers }, Small);
            var estimate = T5MemoryEstimator.Estimate(Small, new MemoryEstimateOptions { Method = TrainingMethod.Ladder, ReductionFactor = 2, SideLayers = layers, SequenceLength = 32, TargetLength = 4 });
            Assert.Equal(side.parameters().Sum(p => p.numel()), estimate.TrainableParameters);
        }
    }

    [Fact]
    public void Presets_are_the_published_shapes_and_ladder_saves_more_than_lora()
    {
        Assert.Equal(222_903_552, T5MemoryEstimator.Parameters(ModelPresets.EncoderDecoder["t5-base"]));   // t5-base: 222.9M
        Assert.Equal(783_150_080, T5MemoryEstimator.Parameters(ModelPresets.EncoderDecoder["flan-t5-large"])); // 783.2M
        long mt0 = T5MemoryEstimator.Parameters(ModelPresets.EncoderDecoder["mt0-xxl"]);
        Assert.InRange(mt0, 12_900_000_000, 13_000_000_000);                                               // 12.9B
        var o = new MemoryEstimateOptions { BatchSize = 100, SequenceLength = 128, TargetLength = 4, LoraTargets = new[] { "q", "v" } };
        var c = ModelPresets.EncoderDecoder["t5-base"];
        double full = T5MemoryEstimator.Estimate(c, o with { Method = TrainingMethod.Full }).TotalBytes;
        double lora = T5MemoryEstimator.Estimate(c, o with { Method = TrainingMethod.Lora }).TotalBytes;
        double ladder = T5MemoryEstimator.Estimate(c, o with { Method = TrainingMethod.Ladder }).TotalBytes;
        Assert.True(ladder < lora && lora < full, $"full {full / 1e9:F2} GB, lora {lora / 1e9:F2} GB, ladder {ladder / 1e9:F2} GB");
    }

    [Fact]
    public void Bad_requests_are_refused_with_what_is_allowed()
    {
        string Refused(MemoryEstimateOptions o) => Assert.Throws<LoraShellException>(() => T5MemoryEstimator.Estimate(Small, o)).ErrorId;
        Assert.Equal("UnknownTarget", Refused(new() { LoraTargets = new[] { "q_proj" } }));
        Assert.Equal("InvalidReductionFactor", Refused(new() { Method = TrainingMethod.Ladder, ReductionFactor = 3 }));
        Assert.Equal("NotSupportedForT5", Refused(new() { ActivationCheckpointing = true }));
        Assert.Equal("NotSupportedForT5", Refused(new() { Quantization = Models.Quantization.BaseQuantization.Nf4 }));
        Assert.Equal("InvalidTargetLength", Refused(new() { TargetLength = 0 }));
    }
}

/// <summary>The T5 estimate against the peak RSS of real text-to-text runs (t5-small's shape), one per process as the decoder's.</summary>
[Collection(nameof(MemoryMeasurementCollection))]
[Trait("Category", "MemoryMeasurement")]
public class T5MemoryMeasuredTests
{
    static readonly T5Config T5Small = new() { VocabSize = 32128, DModel = 512, DKv = 64, DFf = 2048, NumLayers = 6, NumDecoderLayers = 6, NumHeads = 8, EosTokenId = 2 };

    [Fact] public void Full() => Compare(TrainingMethod.Full, tolerance: 0.15);
    [Fact] public void Lora() => Compare(TrainingMethod.Lora, tolerance: 0.15);
    [Fact] public void Ladder() => Compare(TrainingMethod.Ladder, tolerance: 0.25);

    /// <summary>Pairs whose input is exactly <paramref name="input"/> tokens and target <paramref name="target"/>, so the estimate's lengths are the run's.</summary>
    static string Pairs(TempFolder dir, int count, int input, int target)
    {
        // tok512 encodes " a" as one token: BOS + (input - 2) of them + EOS, and a target of (target - 1) + EOS.
        var lines = Enumerable.Range(0, count).Select(_ => System.Text.Json.JsonSerializer.Serialize(new { input = string.Join(" ", Enumerable.Repeat("a", input - 2)), target = string.Join(" ", Enumerable.Repeat("a", target - 1)) }));
        string path = dir.File("pairs.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    static TrainingResult Train(T5Config config, TrainingMethod method, string data, int batch)
    {
        TorchSharp.torch.manual_seed(0);
        using var loaded = new LoadedModel(new T5ForConditionalGeneration(config), Tokenizers.Llama2cTokenizer.Load(SharedData.Tok512), "t5", "test");
        if (method == TrainingMethod.Lora) loaded.Adapters.Add("default", new Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q", "v" } }, seed: 1);
        return Trainer.Run(loaded, new TrainingOptions
        {
            Method = method, DataPaths = new[] { data }, ValidationFraction = 0, MaxSteps = 3, BatchSize = batch, SequenceLength = 256,
            LearningRate = 1e-4, Seed = 1, TrimMemoryEachStep = true,
            Ladder = new LadderConfig { ReductionFactor = 8, Init = LadderInit.Random },
        });
    }

    static void Compare(TrainingMethod method, double tolerance)
    {
        const int batch = 16, input = 128, target = 8;
        using var dir = new TempFolder();
        string data = Pairs(dir, 64, input, target);
        var tokenizer = Tokenizers.Llama2cTokenizer.Load(SharedData.Tok512);
        Assert.Equal(input, TextToTextEncodingLength(tokenizer, File.ReadLines(data).First(), "input"));
        Train(T5Small with { VocabSize = 512, DModel = 64, DFf = 128, NumLayers = 2, NumDecoderLayers = 2 }, method, data, 2); // warm the kernels first
        IO.NativeMemory.ReleaseManagedGarbage();
        IO.NativeMemory.MapLargeAllocations();
        IO.NativeMemory.Trim();
        double baseline = MemoryMeter.CurrentMiB;
        var result = Train(T5Small, method, data, batch);
        double measured = (result.PeakMemoryMiB - baseline) * 1024 * 1024;
        var estimate = T5MemoryEstimator.Estimate(T5Small, new MemoryEstimateOptions
        {
            Method = method, BatchSize = batch, SequenceLength = input, TargetLength = target, LoraTargets = new[] { "q", "v" }, ReductionFactor = 8,
        });
        Assert.Equal(estimate.TrainableParameters, result.TrainableParameters);
        double ratio = estimate.TotalBytes / measured;
        Console.WriteLine($"T5 memory {method}: estimate {estimate.TotalBytes / 1048576:F0} MiB, measured {measured / 1048576:F0} MiB, ratio {ratio:F3}");
        Assert.True(Math.Abs(ratio - 1) < tolerance, $"{method}: estimate {estimate.TotalBytes / 1048576:F0} MiB, measured {measured / 1048576:F0} MiB (ratio {ratio:F2})");
    }

    static int TextToTextEncodingLength(Tokenizers.ITextTokenizer tokenizer, string line, string field)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(line);
        return Tokenizers.TextToTextEncoding.Source(tokenizer, doc.RootElement.GetProperty(field).GetString()!, 2).Length;
    }
}
