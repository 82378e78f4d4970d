using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Session;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class LoraLayerTests
{
    static readonly Tensor Ids = tensor(new long[] { 1, 403, 407, 261, 378, 290, 77, 300, 301, 45, 46, 47 }).unsqueeze(0);

    static Tensor Logits(LoadedModel m)
    {
        using var _ = no_grad();
        return m.Model.forward(Ids);
    }

    static double RelDiff(Tensor a, Tensor b) => TensorAssert.MaxAbsDiff(a, b) / a.abs().max().to(ScalarType.Float64).item<double>();

    [Fact]
    public void ForwardIsBaseOutputPlusScaledLowRankUpdate()
    {
        manual_seed(3);
        var linear = new LinearProjection(16, 12, true);
        var w0 = linear.weight!.clone();
        var lora = new LoraLinear(linear);
        lora.AddAdapter("default", rank: 4, scaling: 2.5, dropout: 0, init: LoraInit.Random);
        lora.SetActive(new[] { "default" });
        var x = randn(5, 16);
        using var _ = no_grad();
        var expected = x.matmul(w0.T) + linear.bias! + 2.5 * x.matmul(lora.lora_A["default"].weight!.T).matmul(lora.lora_B["default"].weight!.T);
        Assert.True(TensorAssert.MaxAbsDiff(expected, lora.forward(x)) < 1e-5);
        Assert.Same(linear, lora.base_layer); // wrapped, not copied
    }

    [Fact]
    public void DefaultInitStartsAtZeroUpdateWithKaimingA()
    {
        var linear = new LinearProjection(64, 64, false);
        var lora = new LoraLinear(linear);
        lora.AddAdapter("default", 8, 1, 0, LoraInit.Default);
        var a = lora.lora_A["default"].weight!;
        Assert.Equal(0f, lora.lora_B["default"].weight!.abs().max().item<float>());
        double bound = 1 / Math.Sqrt(64); // kaiming_uniform(a = √5) on [r, in]
        Assert.True(a.abs().max().item<float>() <= bound + 1e-6);
        Assert.True(a.abs().max().item<float>() > bound * 0.8);
    }

    [Fact]
    public void PissaKeepsTheOutputAndMovesThePrincipalPartIntoTheAdapter()
    {
        manual_seed(5);
        var linear = new LinearProjection(32, 24, false);
        var before = linear.weight!.clone();
        var x = randn(4, 32);
        using var _ = no_grad();
        var y0 = linear.forward(x);
        var lora = new LoraLinear(linear);
        lora.AddAdapter("default", 4, 2.0, 0, LoraInit.Pissa);
        lora.SetActive(new[] { "default" });
        Assert.True(TensorAssert.MaxAbsDiff(y0, lora.forward(x)) < 1e-4);
        // The residual has the top-4 singular values removed.
        var sBefore = linalg.svdvals(before);
        var sAfter = linalg.svdvals(linear.weight!);
        Assert.True(Math.Abs(sAfter[0].item<float>() - sBefore[4].item<float>()) < 1e-4);
    }

    [Fact]
    public void InjectionWrapsTheTargetsAndCountsLikePeft()
    {
        using var m = SharedData.LoadStories();
        var q0 = m.Model.Module("model.layers.0.self_attn.q_proj");
        m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" } });
        var info = m.Adapters.Info("default");
        Assert.Equal(10, info.ModulePaths.Count);
        Assert.Equal(new[] { "q_proj", "v_proj" }, info.TargetModules);
        Assert.Equal(8960, info.TrainableParameters); // 5 × (8·64 + 64·8 + 8·64 + 32·8)
        Assert.Equal(2.0, info.Scaling);
        var wrapper = Assert.IsType<LoraLinear>(m.Model.Module("model.layers.0.self_attn.q_proj"));
        Assert.Same(q0, wrapper.base_layer);
        var names = m.Model.state_dict().Keys.ToHashSet();
        Assert.Contains("model.layers.0.self_attn.q_proj.base_layer.weight", names);
        Assert.Contains("model.layers.0.self_attn.q_proj.lora_A.default.weight", names);
        Assert.Contains("model.layers.4.self_attn.v_proj.lora_B.default.weight", names);
        Assert.DoesNotContain("model.layers.0.self_attn.k_proj.lora_A.default.weight", names);

        m.Adapters.MarkTrainable("default");
        var summary = m.Adapters.Summary();
        Assert.Equal(8960, summary.Trainable);
        Assert.Equal(260032 + 8960, summary.All);
        Assert.Equal("trainable params: 8,960 || all params: 268,992 || trainable%: 3.3310", summary.ToString());
    }

    [Fact]
    public void MergeEqualsUnmergedUnmergeRestoresAndDisableIsBase()
    {
        using var m = SharedData.LoadStories();
        var baseLogits = Logits(m);
        var w0 = m.Model.Module("model.layers.2.mlp.down_proj") is LoraShell.Core.Models.Blocks.LinearProjection l ? l.weight!.clone() : throw new Exception();
        m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetRegex = "all-linear", Init = LoraInit.Random }, seed: 1);
        var unmerged = Logits(m);
        Assert.True(RelDiff(baseLogits, unmerged) > 1e-3, "a random adapter must change the logits");

        m.Adapters.Disable();
        TensorAssert.Identical(baseLogits.detach(), Logits(m));
        m.Adapters.Enable();
        Assert.True(RelDiff(unmerged, Logits(m)) < 1e-6);

        Assert.Equal(new[] { "default" }, m.Adapters.Merge(null, safe: true));
        var merged = Logits(m);
        Assert.True(RelDiff(unmerged, merged) < 1e-5, $"merged vs unmerged {RelDiff(unmerged, merged)}");
        Assert.Empty(m.Adapters.Merge(null, safe: true)); // second merge: no-op

        m.Adapters.Unmerge();
        var w = ((LinearProjection)((LoraLinear)m.Model.Module("model.layers.2.mlp.down_proj")).base_layer).weight;
        Assert.True(TensorAssert.MaxAbsDiff(w0, w) < 1e-6);
        Assert.True(RelDiff(unmerged, Logits(m)) < 1e-5);
    }

    [Fact]
    public void GradientsReachOnlyTheAdapter()
    {
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" }, Init = LoraInit.Random }, seed: 2);
        m.Adapters.MarkTrainable("default");
        m.Model.train();
        var logits = m.Model.forward(Ids);
        var loss = nn.functional.cross_entropy(logits[0, ..^1], Ids[0, 1..]);
        loss.backward();
        Assert.Equal(20, m.Model.named_parameters().Count(p => p.name.Contains(".lora_")));
        foreach (var (name, p) in m.Model.named_parameters())
        {
            bool lora = name.Contains(".lora_A.default.") || name.Contains(".lora_B.default.");
            Assert.Equal(lora, p.requires_grad);
            if (lora) Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, name);
            else Assert.Null(p.grad);
        }
    }

    [Fact]
    public void SafeMergeRefusesNonFiniteWeights()
    {
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj" } });
        var layer = (LoraLinear)m.Model.Module("model.layers.1.self_attn.q_proj");
        using (no_grad()) layer.lora_B["default"].weight![0, 0] = float.NaN;
        var before = ((LinearProjection)layer.base_layer).weight.clone();
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.Merge(null, safe: true));
        Assert.Equal("MergeProducedNonFinite", e.ErrorId);
        TensorAssert.Identical(before, ((LinearProjection)layer.base_layer).weight);
    }

    [Fact]
    public void SeveralNamedAdaptersSwitchAndDelete()
    {
        using var m = SharedData.LoadStories();
        var baseLogits = Logits(m);
        m.Adapters.Add("a", new LoraConfig { R = 4, TargetModules = new[] { "q_proj" }, Init = LoraInit.Random }, seed: 1);
        var onlyA = Logits(m);
        m.Adapters.Add("b", new LoraConfig { R = 2, TargetModules = new[] { "down_proj" }, Init = LoraInit.Random }, seed: 2);
        var onlyB = Logits(m); // Add makes the new adapter the active one
        m.Adapters.SetActive("a");
        Assert.True(RelDiff(onlyA, Logits(m)) < 1e-6);
        m.Adapters.SetActive("a", "b");
        var both = Logits(m);
        Assert.True(RelDiff(onlyA, both) > 1e-4 && RelDiff(onlyB, both) > 1e-4);
        m.Adapters.Delete("a");
        Assert.Equal(new[] { "b" }, m.Adapters.Names);
        Assert.True(RelDiff(onlyB, Logits(m)) < 1e-6);
        m.Adapters.Delete("b");
        TensorAssert.Identical(baseLogits, Logits(m));
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.SetActive("a"));
        Assert.Equal("AdapterNotFound", e.ErrorId);
    }

    [Fact]
    public void RsLoraAndPatternsSetPerModuleScaling()
    {
        using var m = SharedData.LoadStories();
        var config = new LoraConfig
        {
            R = 16, LoraAlpha = 8, UseRsLora = true, TargetModules = new[] { "q_proj", "v_proj" },
            RankPattern = new Dictionary<string, int> { ["v_proj"] = 4 },
            AlphaPattern = new Dictionary<string, double> { ["layers.0.self_attn.q_proj"] = 32 },
        };
        m.Adapters.Add("default", config);
        var q0 = (LoraLinear)m.Model.Module("model.layers.0.self_attn.q_proj");
        var q1 = (LoraLinear)m.Model.Module("model.layers.1.self_attn.q_proj");
        var v3 = (LoraLinear)m.Model.Module("model.layers.3.self_attn.v_proj");
        Assert.Equal(32 / 4.0, q0.Scaling("default"), 9);   // alpha 32, r 16, rsLoRA √16
        Assert.Equal(8 / 4.0, q1.Scaling("default"), 9);
        Assert.Equal(4, v3.Rank("default"));
        Assert.Equal(8 / 2.0, v3.Scaling("default"), 9);     // alpha 8, r 4 → √4
    }

    [Fact]
    public void LayersToTransformLimitsInjection()
    {
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { TargetModules = new[] { "q_proj" }, LayersToTransform = new[] { 1, 3 } });
        Assert.Equal(new[] { "model.layers.1.self_attn.q_proj", "model.layers.3.self_attn.q_proj" }, m.Adapters.Info("default").ModulePaths);
    }

    [Theory]
    [InlineData("nothing_proj", null, 8, "NoTargetModulesMatched")]
    [InlineData(null, "model\\.layers\\.9\\..*", 8, "NoTargetModulesMatched")]
    [InlineData("v_proj", null, 33, "RankTooLarge")]
    [InlineData("q_proj", null, 0, "InvalidRank")]
    public void BadInjectionsAreRejected(string? names, string? regex, int rank, string errorId)
    {
        using var m = SharedData.LoadStories();
        var config = new LoraConfig { R = rank, TargetModules = names is null ? null : new[] { names }, TargetRegex = regex };
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.Add("default", config));
        Assert.Equal(errorId, e.ErrorId);
        if (errorId == "NoTargetModulesMatched") Assert.Contains("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", e.Message);
        Assert.Empty(m.Adapters.Names);
        Assert.IsNotType<LoraLinear>(m.Model.Module("model.layers.0.self_attn.q_proj"));
    }

    [Theory]
    [InlineData(8, 0, 0, "none", "InvalidAlpha")]
    [InlineData(8, 8, 1.0, "none", "InvalidDropout")]
    [InlineData(8, 8, 0, "some", "InvalidBias")]
    public void ConfigValidation(int r, double alpha, double dropout, string bias, string errorId)
    {
        var e = Assert.Throws<LoraShellException>(() => new LoraConfig { R = r, LoraAlpha = alpha, LoraDropout = dropout, Bias = bias }.Validate());
        Assert.Equal(errorId, e.ErrorId);
    }

    [Fact]
    public void DuplicateAdapterNameIsRejected()
    {
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig());
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.Add("default", new LoraConfig()));
        Assert.Equal("AdapterExists", e.ErrorId);
    }

    [Fact]
    public void Bfloat16BaseKeepsFloat32AdaptersAndMergesInFloat32()
    {
        using var m = SharedData.LoadStories(ModelDType.BFloat16);
        m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = new[] { "q_proj", "down_proj" }, Init = LoraInit.Random }, seed: 9);
        var layer = (LoraLinear)m.Model.Module("model.layers.0.self_attn.q_proj");
        Assert.Equal(ScalarType.Float32, layer.lora_A["default"].weight!.dtype);
        Assert.Equal(ScalarType.BFloat16, ((LinearProjection)layer.base_layer).weight.dtype);
        var unmerged = Logits(m).to(ScalarType.Float32);
        m.Adapters.Merge(null, safe: true);
        Assert.Equal(ScalarType.BFloat16, ((LinearProjection)layer.base_layer).weight.dtype);
        Assert.True(RelDiff(unmerged, Logits(m).to(ScalarType.Float32)) < 0.05);
    }

    [Fact]
    public void DropoutActsOnlyInTraining()
    {
        var lora = new LoraLinear(new LinearProjection(32, 32, true));
        lora.AddAdapter("default", 4, 1, 0.5, LoraInit.Random);
        lora.SetActive(new[] { "default" });
        var x = randn(8, 32);
        using var _ = no_grad();
        lora.train();
        Assert.True(TensorAssert.MaxAbsDiff(lora.forward(x), lora.forward(x)) > 0);
        lora.eval();
        TensorAssert.Identical(lora.forward(x), lora.forward(x));
    }
}
