using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using static TorchSharp.torch;
using static LoraShell.Core.Tests.LogitChecks;

namespace LoraShell.Core.Tests;

/// <summary>
/// modules_to_save as PEFT's ModulesToSaveWrapper keeps it (issue 28): each adapter trains its own copy of the
/// module, the base module is kept, and which one computes follows the active adapter — disabling or deleting
/// the adapter gives the base back, another adapter's activation does not see the copy, saving an inactive
/// adapter saves its copy, and merge-and-unload keeps the active copy as the module.
/// </summary>
public class ModulesToSaveTests
{
    static bool Same(Tensor a, Tensor b) => (a - b).abs().max().item<double>() == 0;

    static LoadedModel Untied(TempFolder dir)
    {
        var m = LoadTiny(dir, "llama-linear");
        Assert.False(m.Model.Config.TieWordEmbeddings);
        return m;
    }

    static void Perturb(LoadedModel m, string adapter)
    {
        using var _ = no_grad();
        foreach (var (name, p) in m.Adapters.ModulesToSaveParameters(m.Adapters.ConfigOf(adapter))) p.add_(randn_like(p) * 0.5);
    }

    [Fact]
    public void TheCopyFollowsTheActiveAdapterAndTheBaseComesBack()
    {
        using var dir = new TempFolder();
        using var m = Untied(dir);
        using var baseLogits = Logits(m);
        m.Adapters.Add("head", new LoraConfig { ModulesToSave = new[] { "lm_head" }, Init = LoraInit.Random }, seed: 1);
        Perturb(m, "head"); // training, in short: the live copy changes
        using var trained = Logits(m);
        Assert.False(Same(baseLogits, trained));

        m.Adapters.Disable();
        m.Adapters.Enable();
        m.Adapters.Add("plain", new LoraConfig(), seed: 2); // B = 0: computes as the base
        using (var plain = Logits(m)) Assert.True(Same(baseLogits, plain), "another adapter does not see the copy");
        m.Adapters.SetActive("head");
        using (var again = Logits(m)) Assert.True(Same(trained, again), "the copy kept what it learned");
        m.Adapters.Disable();
        using (var disabled = Logits(m)) Assert.True(Same(baseLogits, disabled), "disabled: the base head");
        m.Adapters.Enable();

        // Saved while inactive, the adapter's file holds its copy; loaded elsewhere it gives the trained logits.
        m.Adapters.SetActive("plain");
        PeftAdapterFormat.Save(m.Adapters, "head", dir.File("head"), overwrite: false, baseModelNameOrPath: null);
        using (var other = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("model") }))
        {
            PeftAdapterFormat.Load(other.Adapters, dir.File("head"), "head");
            using var loaded = Logits(other);
            Assert.True((loaded - trained).abs().max().item<double>() < 1e-5);
        }

        m.Adapters.SetActive("head");
        m.Adapters.Delete("plain");
        var both = new[] { "head" };
        m.Adapters.Merge(both, safe: true);
        m.Adapters.Unload();
        using (var unloaded = Logits(m)) Assert.True((unloaded - trained).abs().max().item<double>() < 1e-5, "merge-and-unload keeps the active copy");
    }

    [Fact]
    public void DeletingTheAdapterGivesTheBaseModuleBackAndTwoCopiesCannotBeActiveAtOnce()
    {
        using var dir = new TempFolder();
        using var m = Untied(dir);
        using var baseLogits = Logits(m);
        m.Adapters.Add("a", new LoraConfig { ModulesToSave = new[] { "lm_head" } }, seed: 1);
        Perturb(m, "a");
        m.Adapters.Add("b", new LoraConfig { ModulesToSave = new[] { "lm_head" } }, seed: 2);
        using (var b = Logits(m)) Assert.True(Same(baseLogits, b), "b's copy starts from the base, not from a's");
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.SetActive("a", "b"));
        Assert.Equal("ModulesToSaveConflict", e.ErrorId);
        m.Adapters.SetActive("a");
        m.Adapters.Delete("a");
        using (var after = Logits(m)) Assert.True(Same(baseLogits, after));
    }

    [Fact]
    public void TrainingTrainsTheCopyAndLeavesTheBase()
    {
        using var dir = new TempFolder();
        using var m = Untied(dir);
        File.WriteAllText(dir.File("s.txt"), File.ReadAllText(SharedData.TinyShakespeare)[..20_000]);
        using var baseLogits = Logits(m);
        m.Adapters.Add("default", new LoraConfig { ModulesToSave = new[] { "lm_head" } }, seed: 1);
        var result = Trainer.Run(m, new TrainingOptions { DataPaths = new[] { dir.File("s.txt") }, MaxSteps = 5, BatchSize = 2, SequenceLength = 8, MaxEvalWindows = 4, Seed = 1 });
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss);
        m.Adapters.Disable();
        using var disabled = Logits(m);
        Assert.True(Same(baseLogits, disabled), "the base head was not trained");
    }

    /// <summary>Both directions against the independent reference (PEFT v0.20.0's ModulesToSaveWrapper and its plain saved keys).</summary>
    [Fact]
    public void SavedCopiesGiveTheReferencesLogitsBothWays()
    {
        using var dir = new TempFolder();
        using var m = Untied(dir);
        m.Adapters.Add("default", new LoraConfig { TargetModules = new[] { "q_proj", "v_proj" }, ModulesToSave = new[] { "lm_head", "model.norm" }, Init = LoraInit.Random }, seed: 1);
        Perturb(m, "default");
        using var ours = Logits(m);
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("ours"), overwrite: false, baseModelNameOrPath: dir.File("model"));

        PythonReference.WriteAdapter(dir.File("model"), dir.File("theirs"), new[] { "q_proj", "o_proj" }, rank: 4, alpha: 8, dora: false, seed: 5, modulesToSave: new[] { "lm_head", "norm" });
        using var other = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("model") });
        PeftAdapterFormat.Load(other.Adapters, dir.File("theirs"), "default");
        using var theirsHere = Logits(other);
        other.Adapters.Disable();
        using var baseLogits = Logits(other);

        var reference = PythonReference.Run(new PythonReference.Job[] { new(dir.File("model"), dir.File("ours")), new(dir.File("model"), dir.File("theirs")) }, TinyFamilies.Ids, dir.Path);
        Assert.True(RelativeError(reference[0], ours) < 1e-5, $"ours in the reference: {RelativeError(reference[0], ours):E2}");
        Assert.True(RelativeError(reference[1], theirsHere) < 1e-5, $"theirs here: {RelativeError(reference[1], theirsHere):E2}");
        Assert.True(RelativeError(reference[1], baseLogits) > 1e-3, "the reference's copies should change the logits");
    }

    /// <summary>
    /// On a tied model PEFT deep-copies the named side (lm_head or the embedding) and the other keeps the base
    /// weight; LoraShell unties the head for such an adapter and ties it again when the adapter goes.
    /// </summary>
    [Theory]
    [InlineData("qwen3", "lm_head", "q_proj")]
    [InlineData("qwen3", "embed_tokens", "v_proj")]
    [InlineData("gpt2", "lm_head", "c_attn")]
    [InlineData("gpt2", "wte", "c_attn")]
    public void OnATiedModelACopyOfOneSideLeavesTheOtherOnTheBaseWeight(string family, string module, string linear)
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, family);
        Assert.True(m.Model.Config.TieWordEmbeddings);
        using var plain = Logits(m);
        m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = new[] { linear }, ModulesToSave = new[] { module }, Init = LoraInit.Random }, seed: 1);
        Assert.False(m.Model.Config.TieWordEmbeddings);
        Perturb(m, "default");
        using var ours = Logits(m);
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("ours"), overwrite: false, baseModelNameOrPath: dir.File("model"));

        PythonReference.WriteAdapter(dir.File("model"), dir.File("theirs"), new[] { linear }, rank: 4, alpha: 8, dora: false, seed: 5, modulesToSave: new[] { module });
        using var other = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("model") });
        PeftAdapterFormat.Load(other.Adapters, dir.File("theirs"), "default");
        using var theirsHere = Logits(other);
        var reference = PythonReference.Run(new PythonReference.Job[] { new(dir.File("model"), dir.File("ours")), new(dir.File("model"), dir.File("theirs")) }, TinyFamilies.Ids, dir.Path);
        Assert.True(RelativeError(reference[0], ours) < 1e-5, $"ours in the reference: {RelativeError(reference[0], ours):E2}");
        Assert.True(RelativeError(reference[1], theirsHere) < 1e-5, $"theirs here: {RelativeError(reference[1], theirsHere):E2}");

        // The adapter goes: the head is the embedding again, and the model computes as before.
        m.Adapters.Delete("default");
        Assert.True(m.Model.Config.TieWordEmbeddings);
        Assert.DoesNotContain(m.Model.named_parameters(), p => p.name.StartsWith("lm_head", StringComparison.Ordinal));
        using (var back = Logits(m)) Assert.True(Same(plain, back), "deleting the adapter restores the tied model");

        // merge_and_unload keeps the live copy: the model stays untied, and its export says so and loads back.
        other.Adapters.Unload();
        Assert.False(other.Model.Config.TieWordEmbeddings);
        HuggingFaceWriter.Save(other.Model, dir.File("unloaded"), overwrite: false);
        using var reloaded = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("unloaded") });
        Assert.False(reloaded.Model.Config.TieWordEmbeddings);
        using var reloadedLogits = Logits(reloaded);
        using var unloaded = Logits(other);
        Assert.True(RelativeError(unloaded, reloadedLogits) < 1e-6, "the untied export");
    }

    [Fact]
    public void ReTyingTheHeadForgetsItsCopiesSoTheOtherAdaptersKeepWorking()
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, "qwen3");
        using var plain = Logits(m);
        m.Adapters.Add("head", new LoraConfig { TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "lm_head" } });
        m.Adapters.Add("norm", new LoraConfig { TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "model.norm" } });
        m.Adapters.Delete("head");
        Assert.True(m.Model.Config.TieWordEmbeddings);
        m.Adapters.Disable();
        m.Adapters.Enable();
        m.Adapters.SetActive("norm");
        m.Adapters.Delete("norm");
        using var back = Logits(m);
        Assert.True(Same(plain, back), "both adapters gone: the base model");
    }

    [Fact]
    public void AConfigWithoutTieWordEmbeddingsIsWrittenWithoutIt()
    {
        // GPT-2's configs often leave the key to GPT2Config's default (true): writing it would change nothing but the text, and checkpoint fingerprints.
        string json = """{"model_type":"gpt2","n_embd":32,"n_head":4,"n_layer":2,"n_positions":64,"vocab_size":50257}""";
        var config = ModelConfig.FromJson(json, "config.json");
        Assert.True(config.TieWordEmbeddings);
        Assert.DoesNotContain("tie_word_embeddings", config.ToJson("float32"));
        Assert.Contains("\"tie_word_embeddings\": false", (config with { TieWordEmbeddings = false }).ToJson("float32"));
    }
}
