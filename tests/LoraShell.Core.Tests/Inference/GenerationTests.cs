using LoraShell.Core.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class GenerationTests
{
    [Fact]
    public void GreedyFromBosReproducesLlama2cReferenceByteForByte()
    {
        var result = SharedData.Stories.Generate(new GenerationOptions { MaxTokens = 200, Temperature = 0 });
        // run.c prints a newline after the generated text.
        string expected = File.ReadAllText(SharedData.Greedy200);
        Assert.Equal(expected, result.Text + "\n");
        Assert.Equal(200, result.GeneratedTokens.Count);
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-9)] // the algorithm: exact up to rounding
    [InlineData(ScalarType.Float32, 1e-5)] // relative to the largest logit
    public void KvCachedDecodingMatchesFullSequenceForward(ScalarType dtype, double tolerance)
    {
        using var loaded = SharedData.LoadStories();
        var model = loaded.Model;
        model.to(dtype);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = randint(3, 512, new long[] { 2, 40 }, generator: new Generator(7, CPU));
        var full = model.forward(ids);
        using var cache = model.NewCache();
        var parts = new List<Tensor> { model.Forward(ids.narrow(1, 0, 17), cache) };
        parts.Add(model.Forward(ids.narrow(1, 17, 3), cache)); // several new positions at once (explicit mask)
        for (int t = 20; t < 40; t++) parts.Add(model.Forward(ids.narrow(1, t, 1), cache));
        var incremental = cat(parts.ToArray(), 1);
        double maxDiff = TensorAssert.MaxAbsDiff(full, incremental) / full.abs().max().to(ScalarType.Float64).item<double>();
        Assert.True(maxDiff < tolerance, $"max |full - cached| / max |logit| = {maxDiff}");
    }

    [Fact]
    public void SamplingWithSeedIsReproducibleAndSeedsDiffer()
    {
        var o = new GenerationOptions { Prompt = "Once upon a time", MaxTokens = 40, Temperature = 1.0, TopP = 0.95, Seed = 42 };
        var a = SharedData.Stories.Generate(o);
        var b = SharedData.Stories.Generate(o);
        var c = SharedData.Stories.Generate(o with { Seed = 43 });
        Assert.Equal(a.GeneratedTokens, b.GeneratedTokens);
        Assert.NotEqual(a.GeneratedTokens, c.GeneratedTokens);
        Assert.StartsWith("Once upon a time", a.Text);
    }

    [Fact]
    public void TinyTopPIsGreedy()
    {
        var greedy = SharedData.Stories.Generate(new GenerationOptions { Prompt = "Tom had a dog", MaxTokens = 30, Temperature = 0 });
        var nucleus = SharedData.Stories.Generate(new GenerationOptions { Prompt = "Tom had a dog", MaxTokens = 30, Temperature = 1, TopP = 1e-6, Seed = 1 });
        Assert.Equal(greedy.GeneratedTokens, nucleus.GeneratedTokens);
    }

    [Theory]
    [InlineData(0, 0.8, 0.9)]
    [InlineData(10, -1, 0.9)]
    [InlineData(10, 0.8, 0)]
    [InlineData(10, 0.8, 1.5)]
    public void BadOptionsAreRejected(int maxTokens, double temperature, double topP)
    {
        var e = Assert.Throws<LoraShellException>(() => SharedData.Stories.Generate(
            new GenerationOptions { MaxTokens = maxTokens, Temperature = temperature, TopP = topP }));
        Assert.Equal(LoraErrorKind.InvalidArgument, e.Kind);
    }
}
