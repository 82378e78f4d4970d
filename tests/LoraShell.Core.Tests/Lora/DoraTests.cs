using System.Text.Json.Nodes;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using static TorchSharp.torch;
using static LoraShell.Core.Tests.LogitChecks;

namespace LoraShell.Core.Tests;

/// <summary>
/// DoRA (issue 28) against the independent reference (tests/reference/hf_reference.py, written from PEFT's
/// dora.py and variants.py in float64): adapters LoraShell saves give the reference's logits, unmerged
/// and merged, in every family (GPT-2's Conv1D too); adapters the reference writes load here and give
/// its logits; merging is exact to float32 and unmerging restores W0; training moves the magnitude.
/// </summary>
public class DoraTests
{
    const double Tolerance = 1e-5; // max |Δlogit| relative to the largest logit, float32 against float64

    public static IEnumerable<object[]> Cases => TinyFamilies.All.Select(c => new object[] { c.Name });

    /// <summary>Magnitudes away from ‖W + s·B·A‖, so the test sees DoRA's rescaling and not only its direction.</summary>
    static void PerturbMagnitudes(LoraAdapterSet set, string name, int seed)
    {
        var g = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var (_, layer) in set.Layers().Where(l => l.Layer.Adapters.Contains(name)))
        {
            var m = layer.lora_magnitude_vector[name].weight;
            m.mul_(rand(m.shape, generator: g) * 0.4 + 0.8);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ADoraAdapterSavedHereGivesTheReferencesLogitsUnmergedAndMerged(string name)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        string folder = dir.File("model"), adapter = dir.File("adapter");
        using (var written = TinyFamilies.Create(c)) HuggingFaceWriter.Save(written, folder, overwrite: false);
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = folder });
        using var plain = Logits(m);
        m.Adapters.Add("default", TinyFamilies.Adapter(m.Model) with { UseDora = true }, seed: 3);
        PerturbMagnitudes(m.Adapters, "default", 4);
        PeftAdapterFormat.Save(m.Adapters, "default", adapter, overwrite: false, baseModelNameOrPath: folder);
        using var adapted = Logits(m);
        bool tiedHead = m.Adapters.Layers().Any(l => l.Path == "lm_head") && m.Model.Config.TieWordEmbeddings;
        var reference = PythonReference.Run(new PythonReference.Job[] { new(folder, adapter), new(folder, adapter, Merge: !tiedHead) }, TinyFamilies.Ids, dir.Path);
        Assert.True(RelativeError(reference[0], adapted) < Tolerance, $"{name}: DoRA unmerged {RelativeError(reference[0], adapted):E2}");
        Assert.True(RelativeError(plain, adapted) > 100 * Tolerance, $"{name}: the DoRA adapter should change the logits");
        if (tiedHead) return;
        m.Adapters.Merge(null, safe: true);
        using var merged = Logits(m);
        Assert.True(RelativeError(reference[1], merged) < Tolerance, $"{name}: DoRA merged {RelativeError(reference[1], merged):E2}");
    }

    [Theory]
    [InlineData("llama-linear", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")]
    [InlineData("qwen3", "q_proj,v_proj,down_proj")]
    [InlineData("gpt2", "c_attn,c_proj,c_fc")]
    public void ADoraAdapterTheReferenceWroteLoadsAndGivesItsLogits(string name, string targets)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        string folder = dir.File("model"), adapter = dir.File("adapter");
        using (var written = TinyFamilies.Create(c)) HuggingFaceWriter.Save(written, folder, overwrite: false);
        PythonReference.WriteAdapter(folder, adapter, targets.Split(','), rank: 4, alpha: 8, dora: true, seed: 7);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, PeftAdapterFiles.ConfigFile)))!;
        Assert.True(config["use_dora"]!.GetValue<bool>());

        using var m = LoadedModel.Load(new ModelLoadOptions { Path = folder });
        using var plain = Logits(m);
        PeftAdapterFormat.Load(m.Adapters, adapter, "default");
        using var adapted = Logits(m);
        var reference = PythonReference.Run(new PythonReference.Job[] { new(folder, adapter) }, TinyFamilies.Ids, dir.Path);
        Assert.True(RelativeError(reference[0], adapted) < Tolerance, $"{name}: {RelativeError(reference[0], adapted):E2}");
        Assert.True(RelativeError(plain, adapted) > 100 * Tolerance, $"{name}: the reference's DoRA adapter should change the logits");

        // Saved again here, the file holds the same tensors under the same keys.
        string again = dir.File("again");
        PeftAdapterFormat.Save(m.Adapters, "default", again, overwrite: false, baseModelNameOrPath: folder);
        using var original = SafetensorsFile.Open(Path.Combine(adapter, PeftAdapterFiles.WeightsFile));
        using var resaved = SafetensorsFile.Open(Path.Combine(again, PeftAdapterFiles.WeightsFile));
        Assert.Equal(original.Names.Order(), resaved.Names.Order());
        Assert.Contains(resaved.Names, n => n.EndsWith(".lora_magnitude_vector", StringComparison.Ordinal));
        foreach (var key in original.Names)
            Assert.True(original.ReadTensor(key).eq(resaved.ReadTensor(key)).all().item<bool>(), key);
    }

    [Fact]
    public void AtInitDoraChangesNothingAndMergeThenUnmergeRestoresTheBase()
    {
        using var m = SharedData.LoadStories();
        var w0 = m.Model.LinearSlots().ToDictionary(s => s.Path, s => ProjectionSlots.BaseOf(s.Module).DenseWeight().clone());
        using var before = Logits(m);
        m.Adapters.Add("d", new LoraConfig { TargetRegex = LoraConfig.AllLinear, UseDora = true }, seed: 1);
        using var atInit = Logits(m);
        Assert.True(RelativeError(before, atInit) < 1e-6, $"B = 0 and m = ‖W0‖: {RelativeError(before, atInit):E2}");

        m.Adapters.Reinitialize("d", 2);
        // Random B and magnitudes: a DoRA update that changes every layer.
        foreach (var (_, layer) in m.Adapters.Layers())
            using (no_grad()) nn.init.normal_(layer.lora_B["d"].weight!, 0, 0.02);
        PerturbMagnitudes(m.Adapters, "d", 5);
        using var unmerged = Logits(m);
        m.Adapters.Merge(null, safe: true);
        using var merged = Logits(m);
        Assert.True(RelativeError(unmerged, merged) < 1e-5, $"merge parity {RelativeError(unmerged, merged):E2}");
        Assert.True(RelativeError(before, merged) > 1e-3);
        m.Adapters.Unmerge();
        foreach (var slot in m.Model.LinearSlots())
        {
            using var w = ProjectionSlots.BaseOf(slot.Module).DenseWeight();
            Assert.True((w - w0[slot.Path]).abs().max().item<float>() < 1e-6, slot.Path);
        }
    }

    [Fact]
    public void OnAQuantizedBaseDoraMergesOntoTheDequantizedWeightAndUnmergesToTheCodes()
    {
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = BaseQuantization.Nf4 });
        using var before = Logits(m);
        m.Adapters.Add("d", new LoraConfig { TargetRegex = LoraConfig.AllLinear, UseDora = true, Init = LoraInit.Random }, seed: 1);
        PerturbMagnitudes(m.Adapters, "d", 6);
        using var unmerged = Logits(m);
        m.Adapters.Merge(null, safe: true);
        using var merged = Logits(m);
        Assert.True(RelativeError(unmerged, merged) < 1e-5, $"merge parity on NF4 {RelativeError(unmerged, merged):E2}");
        m.Adapters.Unmerge();
        m.Adapters.Disable();
        using var restored = Logits(m);
        Assert.True(RelativeError(before, restored) == 0, "unmerging a quantized base gives back exactly its codes");
    }

    [Fact]
    public void MagnitudeSpellingsAndMissingMagnitudesAreHandledAsPeftDoes()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { UseDora = true, Init = LoraInit.Random }, seed: 1);
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), overwrite: false, baseModelNameOrPath: null);
        using var expected = Logits(m);

        // The module's own spelling, ….lora_magnitude_vector.weight, loads as PEFT loads it.
        string weights = Path.Combine(dir.File("a"), PeftAdapterFiles.WeightsFile);
        var tensors = new Dictionary<string, Tensor>();
        using (var f = SafetensorsFile.Open(weights))
            foreach (var n in f.Names) tensors[n.EndsWith("lora_magnitude_vector") ? n + ".weight" : n] = f.ReadTensor(n);
        Directory.CreateDirectory(dir.File("b"));
        File.Copy(Path.Combine(dir.File("a"), PeftAdapterFiles.ConfigFile), Path.Combine(dir.File("b"), PeftAdapterFiles.ConfigFile));
        SafetensorsWriter.Write(Path.Combine(dir.File("b"), PeftAdapterFiles.WeightsFile), tensors.OrderBy(t => t.Key, StringComparer.Ordinal), SafetensorsHeader.PyTorchMetadata);
        using var other = SharedData.LoadStories();
        PeftAdapterFormat.Load(other.Adapters, dir.File("b"), "default");
        using var loaded = Logits(other);
        Assert.Equal(0, RelativeError(expected, loaded));

        // use_dora without magnitudes, and magnitudes without use_dora: refused with the cause named.
        Directory.CreateDirectory(dir.File("c"));
        File.Copy(Path.Combine(dir.File("a"), PeftAdapterFiles.ConfigFile), Path.Combine(dir.File("c"), PeftAdapterFiles.ConfigFile));
        SafetensorsWriter.Write(Path.Combine(dir.File("c"), PeftAdapterFiles.WeightsFile), tensors.Where(t => !t.Key.Contains("magnitude")).OrderBy(t => t.Key, StringComparer.Ordinal), SafetensorsHeader.PyTorchMetadata);
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(SharedData.LoadStories().Adapters, dir.File("c"), "default"));
        Assert.Equal("AdapterDoesNotMatchModel", e.ErrorId);
        Assert.Contains("use_dora but the file holds no DoRA magnitudes", e.Message);

        var plainConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("a"), PeftAdapterFiles.ConfigFile)))!;
        plainConfig["use_dora"] = false;
        File.WriteAllText(Path.Combine(dir.File("b"), PeftAdapterFiles.ConfigFile), plainConfig.ToJsonString());
        e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(SharedData.LoadStories().Adapters, dir.File("b"), "default"));
        Assert.Contains("does not say use_dora: true", e.Message);
    }

    [Fact]
    public void TrainingDoraLowersTheValidationLossAndTrainsTheMagnitude()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        string data = dir.File("s.txt");
        File.WriteAllText(data, File.ReadAllText(SharedData.Path_("data", "tinyshakespeare", "input.txt"))[..30_000]);
        m.Adapters.Add("default", new LoraConfig { TargetRegex = LoraConfig.AllLinear, UseDora = true }, seed: 1);
        var m0 = m.Adapters.Layers().First().Layer.lora_magnitude_vector["default"].weight.clone();
        Assert.Equal(m.Adapters.Info("default").TrainableParameters,
            m.Adapters.Layers().Sum(l => l.Layer.lora_A["default"].weight!.numel() + l.Layer.lora_B["default"].weight!.numel() + l.Layer.OutFeatures));
        var result = Trainer.Run(m, new TrainingOptions { DataPaths = new[] { data }, MaxSteps = 30, BatchSize = 4, SequenceLength = 64, LearningRate = 3e-3, MaxEvalWindows = 16, Seed = 1 });
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss - 0.05, $"{result.InitialValidationLoss} → {result.FinalValidationLoss}");
        var m1 = m.Adapters.Layers().First().Layer.lora_magnitude_vector["default"].weight;
        Assert.True((m1 - m0).abs().max().item<float>() > 1e-4, "the magnitude trains");
        Assert.Equal(result.TrainableParameters, m.Adapters.Info("default").TrainableParameters);
    }
}
