using System.Text.Json.Nodes;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class PeftFormatTests
{
    static readonly Tensor Ids = tensor(new long[] { 1, 403, 407, 261, 378, 290, 77, 300, 301 }).unsqueeze(0);

    static Tensor Logits(LoadedModel m)
    {
        using var _ = no_grad();
        return m.Model.forward(Ids);
    }

    static LoadedModel WithAdapter(LoraConfig config, long seed = 1)
    {
        var m = SharedData.LoadStories();
        m.Adapters.Add("default", config with { Init = LoraInit.Random }, seed);
        return m;
    }

    [Fact]
    public void SavedFolderHasPeftKeysShapesAndConfig()
    {
        using var dir = new TempFolder();
        using var m = WithAdapter(new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" } });
        string folder = Path.Combine(dir.Path, "adapter");
        var result = PeftAdapterFormat.Save(m.Adapters, "default", folder, overwrite: false, baseModelNameOrPath: "karpathy/tinyllamas/stories260K");
        Assert.Equal(20, result.TensorCount);
        Assert.Equal(new FileInfo(Path.Combine(folder, "adapter_model.safetensors")).Length, result.FileBytes);

        var expected = new List<string>();
        for (int i = 0; i < 5; i++)
            foreach (var proj in new[] { "q_proj", "v_proj" })
                foreach (var ab in new[] { "lora_A", "lora_B" })
                    expected.Add($"base_model.model.model.layers.{i}.self_attn.{proj}.{ab}.weight");
        using var st = SafetensorsFile.Open(Path.Combine(folder, "adapter_model.safetensors"));
        Assert.Equal(expected.OrderBy(k => k, StringComparer.Ordinal), st.Names.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 8, 64 }, st["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].Shape);
        Assert.Equal(new long[] { 64, 8 }, st["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].Shape);
        Assert.Equal(new long[] { 8, 64 }, st["base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"].Shape);
        Assert.Equal(new long[] { 32, 8 }, st["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"].Shape);
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.All(st.Entries, e => Assert.Equal("F32", e.DType));

        string json = File.ReadAllText(Path.Combine(folder, "adapter_config.json"));
        var config = JsonNode.Parse(json)!.AsObject();
        var keys = config.Select(p => p.Key).ToList();
        Assert.Equal(keys.OrderBy(k => k, StringComparer.Ordinal), keys); // sorted like PEFT
        Assert.Contains("\n  \"alpha_pattern\"", json); // indent 2
        Assert.Equal("LORA", (string?)config["peft_type"]);
        Assert.Equal("CAUSAL_LM", (string?)config["task_type"]);
        Assert.Equal(8, (int)config["r"]!);
        Assert.Equal(16, (int)config["lora_alpha"]!);
        Assert.Equal(0.0, (double)config["lora_dropout"]!);
        Assert.Equal(new[] { "q_proj", "v_proj" }, config["target_modules"]!.AsArray().Select(n => (string)n!));
        Assert.Equal("none", (string?)config["bias"]);
        Assert.False((bool)config["fan_in_fan_out"]!);
        Assert.False((bool)config["use_rslora"]!);
        Assert.False((bool)config["use_dora"]!);
        Assert.True((bool)config["inference_mode"]!);
        Assert.False((bool)config["init_lora_weights"]!); // this test's adapter was random-initialised
        Assert.IsType<JsonObject>(config["rank_pattern"]);
        Assert.IsType<JsonObject>(config["alpha_pattern"]);
        Assert.Null(config["modules_to_save"]);
        Assert.Null(config["layers_to_transform"]);
        Assert.True(config.ContainsKey("layers_pattern") && config.ContainsKey("revision"));
        Assert.Equal("karpathy/tinyllamas/stories260K", (string?)config["base_model_name_or_path"]);
    }

    [Fact]
    public void SaveThenLoadGivesIdenticalLogits()
    {
        using var dir = new TempFolder();
        using var m = WithAdapter(new LoraConfig { R = 4, LoraAlpha = 8, TargetRegex = "all-linear", RankPattern = new Dictionary<string, int> { ["down_proj"] = 2 } });
        var expected = Logits(m);
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), false, null);

        using var fresh = SharedData.LoadStories();
        PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default");
        TensorAssert.Identical(expected, Logits(fresh));
        Assert.Equal(2, ((LoraLinear)fresh.Model.Module("model.layers.0.mlp.down_proj")).Rank("default"));
    }

    [Fact]
    public void HandWrittenPeftFolderLoadsAndMatchesDirectComputation()
    {
        // Written the way PEFT writes it, from known tensors: r = 2, alpha = 6 on layer 1's o_proj only.
        using var dir = new TempFolder();
        manual_seed(11);
        var a = randn(2, 64);
        var b = randn(64, 2);
        SafetensorsWriter.Write(dir.File("adapter_model.safetensors"), new Dictionary<string, Tensor>
        {
            ["base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight"] = a,
            ["base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight"] = b,
        }, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(dir.File("adapter_config.json"), """
        {
          "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "stories260K", "bias": "none",
          "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layers_pattern": null,
          "layers_to_transform": [1], "lora_alpha": 6, "lora_dropout": 0.05, "megatron_config": null,
          "modules_to_save": null, "peft_type": "LORA", "r": 2, "rank_pattern": {}, "revision": null,
          "target_modules": ["o_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false
        }
        """);
        using var m = SharedData.LoadStories();
        var warnings = new List<string>();
        PeftAdapterFormat.Load(m.Adapters, dir.Path, "default", warnings.Add);
        Assert.Contains(warnings, w => w.Contains("auto_mapping"));
        Assert.DoesNotContain(warnings, w => w.Contains("fan_in_fan_out") || w.Contains("_pattern"));

        // What PEFT corrects with a warning (fan_in_fan_out true on Linear layers) and a pattern key that matches
        // nothing (it changes nothing: a typo) are said, not silently accepted.
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File("adapter_config.json")))!.AsObject();
        config["fan_in_fan_out"] = true;
        config["rank_pattern"] = new System.Text.Json.Nodes.JsonObject { ["o_prj"] = 2 };
        File.WriteAllText(dir.File("adapter_config.json"), config.ToJsonString());
        using (var again = SharedData.LoadStories())
        {
            var more = new List<string>();
            PeftAdapterFormat.Load(again.Adapters, dir.Path, "default", more.Add);
            Assert.Contains(more, w => w.Contains("fan_in_fan_out true") && w.Contains("read as false"));
            Assert.Contains(more, w => w.Contains("rank_pattern key 'o_prj'"));
            Assert.False(again.Adapters.ConfigOf("default").FanInFanOut);
        }
        config["fan_in_fan_out"] = false;
        config["rank_pattern"] = new System.Text.Json.Nodes.JsonObject();
        File.WriteAllText(dir.File("adapter_config.json"), config.ToJsonString());

        // Direct: the same model with W_o(layer 1) += 3·B·A.
        using var direct = SharedData.LoadStories();
        using (no_grad())
        {
            var o = (LoraShell.Core.Models.Blocks.LinearProjection)direct.Model.Module("model.layers.1.self_attn.o_proj");
            o.weight!.add_(3.0 * b.matmul(a));
        }
        Assert.True(TensorAssert.MaxAbsDiff(Logits(direct), Logits(m)) < 1e-4);
    }

    [Fact]
    public void AdapterForAnotherModelNamesShapesAndCause()
    {
        using var dir = new TempFolder();
        using var m = WithAdapter(new LoraConfig { R = 4, TargetModules = new[] { "q_proj" } });
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), false, null);
        // Same names, other sizes: rewrite the file with a 48-wide model's shapes.
        var tensors = new Dictionary<string, Tensor>();
        using (var st = SafetensorsFile.Open(dir.File("a/adapter_model.safetensors")))
            foreach (var n in st.Names) tensors[n] = n.EndsWith("lora_A.weight") ? randn(4, 48) : randn(48, 4);
        SafetensorsWriter.Write(dir.File("a/adapter_model.safetensors"), tensors);
        using var fresh = SharedData.LoadStories();
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default"));
        Assert.Equal("AdapterDoesNotMatchModel", e.ErrorId);
        Assert.Contains("wrong shape 10", e.Message);
        Assert.Contains("another base model", e.Message);
        Assert.Empty(fresh.Adapters.Names); // nothing was injected
    }

    [Fact]
    public void OtherRankIsDiagnosed()
    {
        using var dir = new TempFolder();
        using var m = WithAdapter(new LoraConfig { R = 4, TargetModules = new[] { "q_proj" } });
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), false, null);
        var cfg = JsonNode.Parse(File.ReadAllText(dir.File("a/adapter_config.json")))!;
        cfg["r"] = 8;
        File.WriteAllText(dir.File("a/adapter_config.json"), cfg.ToJsonString());
        using var fresh = SharedData.LoadStories();
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default"));
        Assert.Contains("another rank: the file's r is 4, the config says 8", e.Message);
    }

    [Fact]
    public void MissingKeyIsNamed()
    {
        using var dir = new TempFolder();
        using var m = WithAdapter(new LoraConfig { R = 4, TargetModules = new[] { "q_proj" } });
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), false, null);
        var tensors = new Dictionary<string, Tensor>();
        using (var st = SafetensorsFile.Open(dir.File("a/adapter_model.safetensors")))
            foreach (var n in st.Names.Where(n => !n.Contains("layers.3."))) tensors[n] = st.ReadTensor(n);
        SafetensorsWriter.Write(dir.File("a/adapter_model.safetensors"), tensors);
        using var fresh = SharedData.LoadStories();
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default"));
        Assert.Contains("missing 2: base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight", e.Message);
    }

    [Fact]
    public void FolderWithoutConfigIsRejected()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("adapter_model.safetensors"), "x");
        using var m = SharedData.LoadStories();
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(m.Adapters, dir.Path, "default"));
        Assert.Equal("AdapterConfigNotFound", e.ErrorId);
        Assert.Contains("adapter_model.safetensors", e.Message);
    }

    [Fact]
    public void ExistingOutputNeedsOverwriteAndUntrainedAdapterWarns()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj" } }); // B = 0
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Save(m.Adapters, "default", dir.Path, false, null));
        Assert.Equal("OutputPathExists", e.ErrorId);
        var result = PeftAdapterFormat.Save(m.Adapters, "default", dir.Path, true, null);
        Assert.Contains(result.Warnings, w => w.Contains("zero"));
    }

    [Fact]
    public void MergedModelExportsAsPlainHfFolder()
    {
        using var dir = new TempFolder();
        using var m = WithAdapter(new LoraConfig { R = 4, TargetRegex = "all-linear" });
        var unmerged = Logits(m);
        var e = Assert.Throws<LoraShellException>(() => m.SaveHuggingFace(dir.File("hf"), false));
        Assert.Equal("UnmergedAdapters", e.ErrorId);
        m.Adapters.Merge(null, safe: true);
        m.SaveHuggingFace(dir.File("hf"), false);
        using (var st = SafetensorsFile.Open(dir.File("hf/model.safetensors")))
        {
            Assert.Contains("model.layers.0.self_attn.q_proj.weight", st.Names);
            Assert.DoesNotContain(st.Names, n => n.Contains("lora_") || n.Contains("base_layer"));
        }
        using var back = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("hf") });
        Assert.True(TensorAssert.MaxAbsDiff(unmerged, Logits(back)) / unmerged.abs().max().item<float>() < 1e-5);
    }
}

public class BiasModeTests
{
    static LoadedModel WithBiases()
    {
        var config = SharedData.Stories.Model.Config with { AttentionBias = true };
        return new LoadedModel(new CausalLM(config), null, "biased", "test");
    }

    [Theory]
    [InlineData("all", 20)]       // every q/k/v/o bias of the 5 layers
    [InlineData("lora_only", 5)]  // the biases of the wrapped q_proj layers
    [InlineData("none", 0)]
    public void BiasModeDecidesWhatTrainsAndWhatIsSaved(string bias, int expected)
    {
        using var m = WithBiases();
        m.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj" }, Bias = bias });
        m.Adapters.MarkTrainable("default");
        var saved = PeftAdapterFormat.StateDict(m.Adapters, "default").Where(p => p.Key.EndsWith(".bias")).Select(p => p.Key).ToList();
        Assert.Equal(expected, saved.Count);
        Assert.DoesNotContain(saved, k => k.Contains("base_layer"));
        if (bias == "lora_only") Assert.All(saved, k => Assert.EndsWith("q_proj.bias", k));
        var trainableBiases = m.Model.named_parameters().Where(p => p.name.EndsWith(".bias") && p.parameter.requires_grad).Count();
        Assert.Equal(expected, trainableBiases);
    }
}
