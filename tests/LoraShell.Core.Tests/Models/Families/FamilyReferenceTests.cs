using System.Text.Json.Nodes;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.Families;

/// <summary>
/// Every family against the independent PyTorch reference (tests/reference/hf_reference.py, written from
/// transformers' modeling code and PEFT's LoRA layer, float64): the tiny random checkpoint LoraShell
/// writes, loaded back, gives the reference's logits and loss without an adapter, with a PEFT adapter
/// LoraShell saved (GPT-2's with fan_in_fan_out), and after merging it; and with the family's feature
/// turned off it does not (so the test would catch a model that ignores the feature).
/// </summary>
public class FamilyReferenceTests
{
    const double Tolerance = 1e-5; // max |Δlogit| relative to the largest logit, float32 against float64

    public static IEnumerable<object[]> Cases => TinyFamilies.All.Select(c => new object[] { c.Name });

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsMatchTheReferenceWithAndWithoutAPeftAdapter(string name)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        string folder = dir.File("model"), adapter = dir.File("adapter");
        using (var written = TinyFamilies.Create(c)) HuggingFaceWriter.Save(written, folder, overwrite: false);

        using var m = LoadedModel.Load(new ModelLoadOptions { Path = folder });
        Assert.Equal(c.Config["model_type"]!.GetValue<string>(), m.Model.Config.ModelType);
        using var plain = Logits(m);
        m.Adapters.Add("default", TinyFamilies.Adapter(m.Model), seed: 3);
        PeftAdapterFormat.Save(m.Adapters, "default", adapter, overwrite: false, baseModelNameOrPath: folder);
        using var adapted = Logits(m);
        m.Adapters.Merge(null, safe: true);
        using var merged = Logits(m);

        var reference = PythonReference.Run(new PythonReference.Job[] { new(folder), new(folder, adapter), new(folder, adapter, Merge: true) }, TinyFamilies.Ids, dir.Path);
        AssertClose(reference[0], plain, $"{name} without adapter");
        AssertClose(reference[1], adapted, $"{name} with the PEFT adapter");
        AssertClose(reference[2], merged, $"{name} merged");
        Assert.True(Math.Abs(reference[0].Loss - Loss(plain)) < 1e-5, $"{name}: loss {Loss(plain)} vs reference {reference[0].Loss}");
        Assert.True(Math.Abs(reference[1].Loss - Loss(adapted)) < 1e-5, $"{name}: adapted loss {Loss(adapted)} vs reference {reference[1].Loss}");
        Assert.True(RelativeError(reference[0], adapted) > 100 * Tolerance, $"{name}: the adapter should change the logits");

        if (c.FeatureOff is null) return;
        string off = dir.File("feature-off");
        Directory.CreateDirectory(off);
        var config = (JsonObject)c.Config.DeepClone();
        c.FeatureOff(config);
        File.WriteAllText(Path.Combine(off, HuggingFaceLoader.ConfigFileName), config.ToJsonString());
        File.Copy(Path.Combine(folder, SafetensorsCheckpoint.SingleFileName), Path.Combine(off, SafetensorsCheckpoint.SingleFileName));
        using var without = LoadedModel.Load(new ModelLoadOptions { Path = off });
        using var ignored = Logits(without);
        Assert.True(RelativeError(reference[0], ignored) > 100 * Tolerance, $"{name}: without {c.Feature} the logits should differ from the reference");
    }

    [Fact]
    public void Gpt2LoadsWithOrWithoutTheTransformerPrefixAndIgnoresMaskBuffers()
    {
        var c = TinyFamilies.All.Single(x => x.Name == "gpt2");
        using var dir = new TempFolder();
        string prefixed = dir.File("prefixed"), bare = dir.File("bare");
        using (var written = TinyFamilies.Create(c)) HuggingFaceWriter.Save(written, prefixed, overwrite: false);
        Directory.CreateDirectory(bare);
        File.Copy(Path.Combine(prefixed, HuggingFaceLoader.ConfigFileName), Path.Combine(bare, HuggingFaceLoader.ConfigFileName));
        using (var st = SafetensorsFile.Open(Path.Combine(prefixed, SafetensorsCheckpoint.SingleFileName)))
        {
            var tensors = st.Names.Select(n => KeyValuePair.Create(n["transformer.".Length..], st.ReadTensor(n))).ToList();
            // The original GPT-2 upload carries the attention's causal-mask buffers.
            tensors.Add(KeyValuePair.Create("h.0.attn.bias", ones(1, 1, 16, 16).tril()));
            tensors.Add(KeyValuePair.Create("h.0.attn.masked_bias", tensor(-1e4f)));
            SafetensorsWriter.Write(Path.Combine(bare, SafetensorsCheckpoint.SingleFileName), tensors);
        }
        using var a = LoadedModel.Load(new ModelLoadOptions { Path = prefixed });
        using var b = LoadedModel.Load(new ModelLoadOptions { Path = bare });
        using var la = Logits(a);
        using var lb = Logits(b);
        TensorAssert.Identical(la, lb);
        var reference = PythonReference.Run(new PythonReference.Job[] { new(bare) }, TinyFamilies.Ids, dir.Path);
        AssertClose(reference[0], lb, "gpt2 without the prefix");
    }

    [Fact]
    public void Gpt2AdaptersAreFanInFanOutWithPeftShapes()
    {
        using var m = new LoadedModel(TinyFamilies.Create(TinyFamilies.All.Single(x => x.Name == "gpt2")), null, "gpt2", ModelLoader.HuggingFaceFormat);
        m.Adapters.Add("default", new LoraConfig { R = 4, TargetModules = new[] { "c_attn", "c_fc" } });
        Assert.True(m.Adapters.ConfigOf("default").FanInFanOut);
        var state = PeftAdapterFormat.StateDict(m.Adapters, "default").ToDictionary(p => p.Key, p => p.Value.shape);
        Assert.Equal(new long[] { 4, 32 }, state["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]); // [r, in]
        Assert.Equal(new long[] { 96, 4 }, state["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"]); // [out, r]: q, k and v of width 32
        Assert.Equal(new long[] { 128, 4 }, state["base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight"]);
    }

    [Fact]
    public void UnknownModelTypesNameTheSupportedOnes()
    {
        var e = Assert.Throws<LoraShellException>(() => ModelConfig.FromJson("{\"model_type\": \"gemma\", \"hidden_size\": 8}", "config.json"));
        Assert.Equal("UnsupportedModelType", e.ErrorId);
        foreach (var family in new[] { "llama", "mistral", "qwen2", "qwen3", "phi3", "gpt2" }) Assert.Contains(family, e.Message);
    }

    [Theory]
    [InlineData("{\"model_type\": \"phi3\", \"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1], \"short_factor\": [1]}}", "UnsupportedRopeScaling", "longrope")]
    [InlineData("{\"model_type\": \"phi3\", \"rope_scaling\": {\"type\": \"su\"}}", "UnsupportedRopeScaling", "su")]
    [InlineData("{\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}", "UnsupportedRopeScaling", "yarn")]
    [InlineData("{\"model_type\": \"qwen2\", \"use_sliding_window\": true}", "UnsupportedSlidingWindow", "use_sliding_window")]
    [InlineData("{\"model_type\": \"llama\", \"hidden_act\": \"mish\"}", "UnsupportedActivation", "mish")]
    public void RefusedFeaturesSayWhat(string overrides, string errorId, string named)
    {
        var config = (JsonObject)TinyFamilies.All[0].Config.DeepClone();
        config.Remove("rope_scaling");
        foreach (var (k, v) in JsonNode.Parse(overrides)!.AsObject()) config[k] = v?.DeepClone();
        var e = Assert.Throws<LoraShellException>(() => ModelConfig.FromJson(config.ToJsonString(), "config.json"));
        Assert.Equal(errorId, e.ErrorId);
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void EveryFamilyBuildsExactlyTheTensorsItsDescriptionLists()
    {
        foreach (var c in TinyFamilies.All)
        {
            var config = TinyFamilies.ConfigOf(c);
            using var model = new CausalLM(config);
            var built = model.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
            var described = config.Family.Tensors(config).ToDictionary(t => t.Name, t => t.Shape);
            Assert.Equal(described.Keys.OrderBy(k => k), built.Keys.OrderBy(k => k));
            foreach (var (k, shape) in described) Assert.Equal(shape, built[k]);
            Assert.Equal(config.ParameterCount, model.parameters().Sum(p => p.numel()));
        }
    }

    static Tensor Logits(LoadedModel m)
    {
        using var _ = no_grad();
        return m.Model.forward(TinyFamilies.IdTensor()).to(ScalarType.Float64);
    }

    static double Loss(Tensor logits)
    {
        using var _ = no_grad();
        var ids = TinyFamilies.IdTensor();
        long seq = ids.shape[1];
        return nn.functional.cross_entropy(logits.narrow(1, 0, seq - 1).reshape(-1, logits.shape[^1]), ids.narrow(1, 1, seq - 1).reshape(-1)).item<double>();
    }

    static double RelativeError(PythonReference.Result reference, Tensor ours)
    {
        using var r = tensor(reference.Logits);
        return (r - ours).abs().max().item<double>() / r.abs().max().item<double>();
    }

    static void AssertClose(PythonReference.Result reference, Tensor ours, string what)
    {
        double error = RelativeError(reference, ours);
        Assert.True(error < Tolerance, $"{what}: max |Δlogit| / max |logit| = {error:E2} (tolerance {Tolerance:E0})");
    }
}

/// <summary>Invoke-SvdDelta on GPT-2 checkpoints: factors in PEFT's orientation with fan_in_fan_out.</summary>
public class Gpt2SvdDeltaTests
{
    [Fact]
    public void APlantedConv1DDeltaComesBackAsAFanInFanOutAdapterThatPeftAndLoraShellApplyAlike()
    {
        var c = TinyFamilies.All.Single(x => x.Name == "gpt2");
        using var dir = new TempFolder();
        string basePath = dir.File("base"), ftPath = dir.File("ft"), adapter = dir.File("delta");
        using (var model = TinyFamilies.Create(c))
        {
            HuggingFaceWriter.Save(model, basePath, overwrite: false);
            using (no_grad())
            {
                // A rank-2 change of every c_attn, in Conv1D's [in, out] storage.
                manual_seed(11);
                foreach (var slot in model.LinearSlots().Where(s => s.Name == "c_attn"))
                {
                    var w = ((Models.Blocks.Conv1DProjection)slot.Module).weight;
                    w.add_(randn(w.shape[0], 2).matmul(randn(2, w.shape[1])) * 0.05);
                }
            }
            HuggingFaceWriter.Save(model, ftPath, overwrite: false);
        }
        var summary = Delta.SvdDeltaCompressor.Run(new Delta.SvdDeltaOptions
        {
            BasePath = basePath, FineTunedPath = ftPath, OutputPath = adapter, Policy = new Delta.RankPolicy { Rank = 2 }, TargetModules = new[] { "c_attn" },
        }, _ => { });
        Assert.Equal(2, summary.Matrices);
        Assert.True(summary.WorstRelativeError < 1e-5);
        var config = LoraConfig.FromJson(File.ReadAllText(Path.Combine(adapter, PeftAdapterFiles.ConfigFile)), "adapter");
        Assert.True(config.FanInFanOut);
        using (var st = SafetensorsFile.Open(Path.Combine(adapter, PeftAdapterFiles.WeightsFile)))
        {
            Assert.Equal(new long[] { 2, 32 }, st["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"].Shape); // [r, in]
            Assert.Equal(new long[] { 96, 2 }, st["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"].Shape); // [out, r]
        }

        using var fineTuned = LoadedModel.Load(new ModelLoadOptions { Path = ftPath });
        using var adapted = LoadedModel.Load(new ModelLoadOptions { Path = basePath });
        PeftAdapterFormat.Load(adapted.Adapters, adapter, "default");
        Tensor expected, ours;
        using (no_grad())
        {
            expected = fineTuned.Model.forward(TinyFamilies.IdTensor()).to(ScalarType.Float64);
            ours = adapted.Model.forward(TinyFamilies.IdTensor()).to(ScalarType.Float64);
        }
        Assert.True(TensorAssert.MaxAbsDiff(expected, ours) / expected.abs().max().item<double>() < 1e-5);
        var reference = PythonReference.Run(new PythonReference.Job[] { new(basePath, adapter) }, TinyFamilies.Ids, dir.Path);
        using var r = tensor(reference[0].Logits);
        Assert.True((r - expected).abs().max().item<double>() / r.abs().max().item<double>() < 1e-5, "the reference applies the delta adapter as the fine-tune");
    }
}
