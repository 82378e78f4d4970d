using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using static TorchSharp.torch;
using static LoraShell.Core.Tests.LogitChecks;

namespace LoraShell.Core.Tests;

/// <summary>
/// LoRA on the token embedding (issue 28), as PEFT v0.20.0's lora.Embedding: A [r, vocab] and B [dim, r] saved
/// as <c>…embed_tokens.lora_embedding_A</c>/<c>_B</c>, y = W[x] + s·Aᵀ[x]·Bᵀ, a tied head computing with the base
/// weight. Both directions against the independent reference, on an untied Llama, a tied Qwen3 and GPT-2's wte.
/// </summary>
public class EmbeddingLoraTests
{
    const double Tolerance = 1e-5;

    [Theory]
    [InlineData("llama-linear", "embed_tokens", "q_proj")]
    [InlineData("qwen3", "embed_tokens", "v_proj")]
    [InlineData("gpt2", "wte", "c_attn")]
    public void EmbeddingAdaptersGiveTheReferencesLogitsBothWays(string family, string embedding, string linear)
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, family);
        using var plain = Logits(m);
        m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = new[] { embedding, linear }, Init = LoraInit.Random }, seed: 1);
        var info = m.Adapters.Info("default");
        Assert.Contains(m.Model.EmbeddingSlot().Path, info.ModulePaths);
        using var ours = Logits(m);
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("ours"), overwrite: false, baseModelNameOrPath: dir.File("model"));
        using (var file = SafetensorsFile.Open(Path.Combine(dir.File("ours"), PeftAdapterFiles.WeightsFile)))
            Assert.Contains(PeftKeys.EmbeddingAKey(m.Model.EmbeddingSlot().Path), file.Names);

        PythonReference.WriteAdapter(dir.File("model"), dir.File("theirs"), new[] { embedding, linear }, rank: 4, alpha: 8, dora: false, seed: 3);
        using var other = LoadTiny(dir, family);
        PeftAdapterFormat.Load(other.Adapters, dir.File("theirs"), "default");
        using var theirsHere = Logits(other);

        var reference = PythonReference.Run(new PythonReference.Job[] { new(dir.File("model"), dir.File("ours")), new(dir.File("model"), dir.File("theirs")) }, TinyFamilies.Ids, dir.Path);
        Assert.True(RelativeError(reference[0], ours) < Tolerance, $"{family}: ours in the reference {RelativeError(reference[0], ours):E2}");
        Assert.True(RelativeError(reference[1], theirsHere) < Tolerance, $"{family}: theirs here {RelativeError(reference[1], theirsHere):E2}");
        Assert.True(RelativeError(reference[1], plain) > 100 * Tolerance, "the reference's adapter should change the logits");

        if (m.Model.Config.TieWordEmbeddings)
        {
            var e = Assert.Throws<LoraShellException>(() => m.Adapters.Merge(null, safe: true));
            Assert.Equal("MergeWouldChangeTiedHead", e.ErrorId);
            return;
        }
        m.Adapters.Merge(null, safe: true);
        using (var merged = Logits(m)) Assert.True((merged - ours).abs().max().item<double>() / ours.abs().max().item<double>() < Tolerance, "merge parity");
        // The merged embedding exports under the plain HF name and loads back as the merged model.
        HuggingFaceWriter.Save(m.Model, dir.File("merged"), overwrite: false);
        using (var back = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("merged") }))
        using (var reloaded = Logits(back))
            Assert.True((reloaded - ours).abs().max().item<double>() / ours.abs().max().item<double>() < Tolerance, "exported merged model");
        m.Adapters.Unmerge();
        m.Adapters.Disable();
        using (var restored = Logits(m)) Assert.True((restored - plain).abs().max().item<double>() < 1e-5, "unmerge restores the embedding");
    }

    [Fact]
    public void AtPeftsInitTheEmbeddingAdapterChangesNothingAndTrainingLowersTheLoss()
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, "llama-linear");
        File.WriteAllText(dir.File("s.txt"), File.ReadAllText(SharedData.TinyShakespeare)[..20_000]);
        using var plain = Logits(m);
        m.Adapters.Add("default", new LoraConfig { R = 4, TargetModules = new[] { "embed_tokens" } }, seed: 1);
        using (var init = Logits(m)) Assert.True((init - plain).abs().max().item<double>() == 0, "A starts at zero");
        var result = Trainer.Run(m, new TrainingOptions { DataPaths = new[] { dir.File("s.txt") }, MaxSteps = 10, BatchSize = 2, SequenceLength = 8, LearningRate = 1e-2, MaxEvalWindows = 8, Seed = 1 });
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss, $"{result.InitialValidationLoss} → {result.FinalValidationLoss}");
        Assert.Equal(4 * (512 + 32) , result.TrainableParameters);
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.Add("dora", new LoraConfig { TargetModules = new[] { "embed_tokens" }, UseDora = true }));
        Assert.Equal("DoraOnEmbedding", e.ErrorId);
    }
}
