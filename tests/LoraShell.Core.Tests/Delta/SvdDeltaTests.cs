using System.Text.Json.Nodes;
using LoraShell.Core.Delta;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class SvdDeltaTests
{
    /// <summary>U·diag(σ)·Vᵀ with random orthonormal U, V.</summary>
    static Tensor Planted(long m, long n, Func<int, double> sigma, long seed)
    {
        using var g = new Generator((ulong)seed, CPU);
        long k = Math.Min(m, n);
        var (u, _) = linalg.qr(randn(new long[] { m, k }, generator: g));
        var (v, _) = linalg.qr(randn(new long[] { n, k }, generator: g));
        var s = tensor(Enumerable.Range(0, (int)k).Select(i => (float)sigma(i)).ToArray());
        return (u * s.unsqueeze(0)).matmul(v.t());
    }

    static double Optimal(Func<int, double> sigma, int k, int r)
    {
        double total = Enumerable.Range(0, k).Sum(i => sigma(i) * sigma(i));
        return Math.Sqrt(Enumerable.Range(r, k - r).Sum(i => sigma(i) * sigma(i)) / total);
    }

    static List<SvdDeltaReport> Compress(TempFolder dir, Dictionary<string, Tensor> base_, Dictionary<string, Tensor> ft, RankPolicy policy,
        SvdMethod method = SvdMethod.Exact, bool includeNonMatrix = false, bool uniform = false, string output = "out", bool skipMissing = false)
    {
        SafetensorsWriter.Write(dir.File("base.safetensors"), base_);
        SafetensorsWriter.Write(dir.File("ft.safetensors"), ft);
        var reports = new List<SvdDeltaReport>();
        SvdDeltaCompressor.Run(new SvdDeltaOptions
        {
            BasePath = dir.File("base.safetensors"), FineTunedPath = dir.File("ft.safetensors"), OutputPath = dir.File(output),
            Policy = policy, Method = method, IncludeNonMatrix = includeNonMatrix, UniformRank = uniform, Overwrite = true, Seed = 3, SkipMissing = skipMissing,
        }, reports.Add);
        return reports;
    }

    [Fact]
    public void ExactMethodMeetsTheEckartYoungOptimum()
    {
        using var dir = new TempFolder();
        Func<int, double> sigma = i => Math.Pow(0.8, i);
        var m = Planted(96, 80, sigma, 1);
        var zero = zeros(96, 80);
        foreach (int r in new[] { 1, 5, 20 })
        {
            var rep = Compress(dir, new() { ["layer.weight"] = zero }, new() { ["layer.weight"] = m }, new RankPolicy { Rank = r }).Single();
            double optimal = Optimal(sigma, 80, r);
            Assert.Equal(r, rep.Rank);
            Assert.True(Math.Abs(rep.RelativeError - optimal) < 1e-5, $"r {r}: {rep.RelativeError} vs {optimal}");
            Assert.True(Math.Abs(rep.OptimalError!.Value - optimal) < 1e-5);
        }
    }

    [Fact]
    public void RandomizedSvdIsWithinOnePercentOfOptimalAtRank64()
    {
        Func<int, double> sigma = i => 1 / Math.Sqrt(i + 1); // slowly decaying
        var m = Planted(2048, 2048, sigma, 2);
        using var svd = TruncatedSvd.Randomized(m, 64, seed: 5);
        var approx = (svd.U * svd.S.unsqueeze(0)).matmul(svd.Vh);
        double error = ((m - approx).norm().item<float>()) / m.norm().item<float>();
        double optimal = Optimal(sigma, 2048, 64);
        Assert.True(error <= optimal * 1.01, $"randomized {error} vs optimal {optimal}");
        // Same seed, same factors.
        using var again = TruncatedSvd.Randomized(m, 64, seed: 5);
        TensorAssert.Identical(svd.S, again.S);
    }

    [Fact]
    public void AdaptivePoliciesPickTheSmallestSufficientRank()
    {
        var s = Enumerable.Range(0, 50).Select(i => Math.Pow(0.7, i)).ToArray();
        double fro2 = s.Sum(x => x * x);
        var energy = new RankPolicy { EnergyThreshold = 0.95 };
        int r = energy.Choose(s, fro2, 50);
        Assert.True(s.Take(r).Sum(x => x * x) / fro2 >= 0.95);
        Assert.True(s.Take(r - 1).Sum(x => x * x) / fro2 < 0.95);
        var error = new RankPolicy { MaxRelativeError = 0.1 };
        int e = error.Choose(s, fro2, 50);
        Assert.True(Math.Sqrt(s.Skip(e).Sum(x => x * x) / fro2) <= 0.1);
        Assert.True(Math.Sqrt(s.Skip(e - 1).Sum(x => x * x) / fro2) > 0.1);
        Assert.Equal(3, new RankPolicy { EnergyThreshold = 0.999, MaxRank = 3 }.Choose(s, fro2, 50));
    }

    [Fact]
    public void ErrorFallsAsRankGrows()
    {
        using var dir = new TempFolder();
        var m = Planted(64, 64, i => 1.0 / (i + 1), 4);
        double previous = double.MaxValue;
        foreach (int r in new[] { 1, 2, 4, 8, 16, 32 })
        {
            var rep = Compress(dir, new() { ["w.weight"] = zeros(64, 64) }, new() { ["w.weight"] = m }, new RankPolicy { Rank = r }).Single();
            Assert.True(rep.RelativeError < previous);
            previous = rep.RelativeError;
        }
    }

    [Fact]
    public void AdapterHasPeftLayoutWithUnitScalingAndRankPattern()
    {
        using var dir = new TempFolder();
        var reports = Compress(dir,
            new() { ["model.a.weight"] = zeros(32, 16), ["model.b.weight"] = zeros(24, 16), ["model.norm.weight"] = ones(16) },
            new() { ["model.a.weight"] = Planted(32, 16, i => Math.Pow(0.5, i), 1), ["model.b.weight"] = Planted(24, 16, i => i < 2 ? 1 : 0, 2), ["model.norm.weight"] = ones(16) * 1.5f },
            new RankPolicy { MaxRelativeError = 1e-3 }, includeNonMatrix: true);
        var a = reports.Single(r => r.Name == "model.a.weight");
        var b = reports.Single(r => r.Name == "model.b.weight");
        var norm = reports.Single(r => r.Name == "model.norm.weight");
        Assert.Equal(2, b.Rank);
        Assert.True(a.Rank > 2);
        Assert.Equal(DeltaStatus.NonMatrix, norm.Status);
        Assert.True(norm.StoredExactly);

        var config = JsonNode.Parse(File.ReadAllText(dir.File("out/adapter_config.json")))!;
        Assert.Equal(a.Rank, (int)config["r"]!);
        Assert.Equal(a.Rank, (int)config["lora_alpha"]!);
        Assert.Equal(2, (int)config["rank_pattern"]!["model\\.b"]!);
        Assert.Equal(2, (double)config["alpha_pattern"]!["model\\.b"]!);
        Assert.Equal(new[] { "model.norm" }, config["modules_to_save"]!.AsArray().Select(n => (string)n!));
        var parsed = LoraConfig.FromJson(config.ToJsonString(), "x");
        Assert.Equal(1.0, parsed.ScalingFor("model.a"));
        Assert.Equal(1.0, parsed.ScalingFor("model.b"));

        using var st = SafetensorsFile.Open(dir.File("out/adapter_model.safetensors"));
        Assert.Equal(new long[] { 2, 16 }, st["base_model.model.model.b.lora_A.weight"].Shape);
        Assert.Equal(new long[] { 24, 2 }, st["base_model.model.model.b.lora_B.weight"].Shape);
        Assert.Contains("base_model.model.model.norm.weight", st.Names);
        // B·A rebuilds the delta.
        var delta = st.ReadTensor("base_model.model.model.b.lora_B.weight").matmul(st.ReadTensor("base_model.model.model.b.lora_A.weight"));
        Assert.True(TensorAssert.MaxAbsDiff(delta, Planted(24, 16, i => i < 2 ? 1 : 0, 2)) < 1e-5);
    }

    [Fact]
    public void UniformRankPadsFactorsWithoutPatterns()
    {
        using var dir = new TempFolder();
        Compress(dir,
            new() { ["m.a.weight"] = zeros(32, 16), ["m.b.weight"] = zeros(24, 16) },
            new() { ["m.a.weight"] = Planted(32, 16, i => Math.Pow(0.5, i), 1), ["m.b.weight"] = Planted(24, 16, i => i < 2 ? 1 : 0, 2) },
            new RankPolicy { MaxRelativeError = 1e-3 }, uniform: true);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("out/adapter_config.json")))!;
        int r = (int)config["r"]!;
        Assert.Empty(config["rank_pattern"]!.AsObject());
        using var st = SafetensorsFile.Open(dir.File("out/adapter_model.safetensors"));
        Assert.Equal(new long[] { r, 16 }, st["base_model.model.m.b.lora_A.weight"].Shape);
        var delta = st.ReadTensor("base_model.model.m.b.lora_B.weight").matmul(st.ReadTensor("base_model.model.m.b.lora_A.weight"));
        Assert.True(TensorAssert.MaxAbsDiff(delta, Planted(24, 16, i => i < 2 ? 1 : 0, 2)) < 1e-5);
    }

    [Fact]
    public void FullRankWithNonMatrixReproducesTheFineTunedModel()
    {
        using var dir = new TempFolder();
        using var ft = SharedData.LoadStories();
        Trainer.Run(ft, new TrainingOptions
        {
            Method = TrainingMethod.Full, DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 10, BatchSize = 4, SequenceLength = 64,
            LearningRate = 2e-3, MaxEvalWindows = 2, Seed = 3,
        });
        SharedData.Stories.SaveHuggingFace(dir.File("base"), false);
        ft.SaveHuggingFace(dir.File("ft"), false);
        var reports = new List<SvdDeltaReport>();
        var summary = SvdDeltaCompressor.Run(new SvdDeltaOptions
        {
            BasePath = dir.File("base"), FineTunedPath = dir.File("ft"), OutputPath = dir.File("delta"), Policy = new RankPolicy { EnergyThreshold = 1.0 }, // full rank everywhere
            IncludeNonMatrix = true,
        }, reports.Add);
        Assert.Equal(35, summary.Matrices);
        Assert.Contains(reports, r => r.Name == "model.embed_tokens.weight" && r.StoredExactly);

        using var merged = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("base"), TokenizerPath = SharedData.Tok512 });
        PeftAdapterFormat.Load(merged.Adapters, dir.File("delta"), "default");
        merged.Adapters.Merge(null, safe: true);
        string text = File.ReadAllText(SharedData.TinyShakespeare)[^4000..];
        double expected = ft.Perplexity(text).Loss;
        double actual = merged.Perplexity(text).Loss;
        Assert.True(Math.Abs(expected - actual) < 1e-4, $"{expected} vs {actual}");
    }

    [Fact]
    public void BadInputsAreNamed()
    {
        using var dir = new TempFolder();
        var e = Assert.Throws<LoraShellException>(() => Compress(dir, new() { ["x.weight"] = zeros(4, 4) }, new() { ["x.weight"] = zeros(4, 5) }, new RankPolicy { Rank = 1 }));
        Assert.Equal("ShapeMismatch", e.ErrorId);
        Assert.Contains("'x.weight'", e.Message);

        e = Assert.Throws<LoraShellException>(() => Compress(dir, new() { ["x.weight"] = zeros(4, 4), ["y.weight"] = zeros(4, 4) }, new() { ["x.weight"] = ones(4, 4) }, new RankPolicy { Rank = 1 }));
        Assert.Equal("TensorMissing", e.ErrorId);
        Assert.Contains("y.weight", e.Message);
        var skipped = Compress(dir, new() { ["x.weight"] = zeros(4, 4), ["y.weight"] = zeros(4, 4) }, new() { ["x.weight"] = ones(4, 4) }, new RankPolicy { Rank = 1 }, skipMissing: true);
        Assert.Contains(skipped, r => r.Name == "y.weight" && r.Status == DeltaStatus.Missing);
        Assert.Contains(skipped, r => r.Name == "x.weight" && r.Status == DeltaStatus.Compressed && r.Rank == 1);

        var same = Compress(dir, new() { ["x.weight"] = ones(4, 4) }, new() { ["x.weight"] = ones(4, 4) }, new RankPolicy { EnergyThreshold = 0.9 }, output: "same");
        Assert.Equal(DeltaStatus.ZeroDelta, same.Single().Status);
        Assert.Equal(0, same.Single().Rank);
        Assert.False(double.IsNaN(same.Single().RelativeError));
        Assert.False(Directory.Exists(dir.File("same")));

        e = Assert.Throws<LoraShellException>(() => Compress(dir, new() { ["x.weight"] = zeros(4, 6) }, new() { ["x.weight"] = ones(4, 6) }, new RankPolicy { Rank = 5 }));
        Assert.Equal("RankTooLarge", e.ErrorId);
        foreach (var bad in new[] { 0.0, 1.5, -0.1 })
        {
            Assert.Equal("InvalidThreshold", Assert.Throws<LoraShellException>(() => new RankPolicy { EnergyThreshold = bad }.Validate()).ErrorId);
            Assert.Equal("InvalidThreshold", Assert.Throws<LoraShellException>(() => new RankPolicy { MaxRelativeError = bad }.Validate()).ErrorId);
        }
        Directory.CreateDirectory(dir.File("exists"));
        e = Assert.Throws<LoraShellException>(() => SvdDeltaCompressor.Run(new SvdDeltaOptions
        {
            BasePath = dir.File("base.safetensors"), FineTunedPath = dir.File("ft.safetensors"), OutputPath = dir.File("exists"), Policy = new RankPolicy { Rank = 1 },
        }, _ => { }));
        Assert.Equal("OutputPathExists", e.ErrorId);
    }

    [Fact]
    public void StreamWriterRoundTrips()
    {
        using var dir = new TempFolder();
        var a = randn(3, 4);
        var b = arange(5, dtype: ScalarType.Int64);
        using (var w = new SafetensorsStreamWriter(dir.Path))
        {
            w.Add("a", a);
            w.Add("b", b);
            w.Finish(dir.File("x.safetensors"), new Dictionary<string, string> { ["format"] = "pt" });
        }
        using var f = SafetensorsFile.Open(dir.File("x.safetensors"));
        TensorAssert.Identical(a, f.ReadTensor("a"));
        TensorAssert.Identical(b, f.ReadTensor("b"));
        Assert.Single(Directory.GetFiles(dir.Path)); // the scratch data file is gone
    }
}
