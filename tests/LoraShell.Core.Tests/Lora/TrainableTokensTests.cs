using LoraShell.Core.Export;
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
/// trainable_token_indices (issue 28), as PEFT's TrainableTokensLayer: the adapter holds the new values of a few
/// embedding rows (<c>token_adapter.trainable_tokens_delta</c> [n, dim]), the lookup and a tied head use them,
/// merge writes them into the weight. Both directions against the independent reference (which reads PEFT's
/// code), on an untied Llama, a tied Qwen3 and GPT-2's wte.
/// </summary>
public class TrainableTokensTests
{
    const double Tolerance = 1e-5;
    // 5, 42 and 71 occur in TinyFamilies.Ids (the lookup matters); 3 does not (only a tied head sees it).
    static readonly int[] Tokens = { 5, 42, 71, 3 };

    static LoraConfig WithTokens(string linear, params int[] tokens) => new()
    {
        R = 4, LoraAlpha = 8, TargetModules = new[] { linear }, Init = LoraInit.Random,
        TrainableTokenIndices = new Dictionary<string, IReadOnlyList<int>> { [LoraConfig.InputEmbedding] = tokens },
    };

    static void MoveRows(LoadedModel m, string adapter)
    {
        using var _ = no_grad();
        m.Adapters.TokenRowsLayer()!.Value.Layer.Rows(adapter).add_(randn(Tokens.Length, m.Model.Config.HiddenSize) * 0.5);
    }

    static double Diff(Tensor a, Tensor b) => (a - b).abs().max().to(ScalarType.Float64).item<double>() / a.abs().max().to(ScalarType.Float64).item<double>();

    [Theory]
    [InlineData("llama-linear", "q_proj")]
    [InlineData("qwen3", "v_proj")]
    [InlineData("gpt2", "c_attn")]
    public void TokenRowsGiveTheReferencesLogitsBothWaysAndMergeExactly(string family, string linear)
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, family);
        using var plain = Logits(m);
        manual_seed(7);
        m.Adapters.Add("default", WithTokens(linear, Tokens), seed: 1);
        Assert.Equal(Tokens.Length, m.Adapters.Info("default").TrainableTokens);
        MoveRows(m, "default");
        using var ours = Logits(m);
        PeftAdapterFormat.Save(m.Adapters, "default", dir.File("ours"), overwrite: false, baseModelNameOrPath: dir.File("model"));
        string path = m.Model.EmbeddingSlot().Path;
        using (var file = SafetensorsFile.Open(Path.Combine(dir.File("ours"), PeftAdapterFiles.WeightsFile)))
        {
            Assert.Contains(PeftKeys.TokenRowsKey(path), file.Names);
            Assert.Equal(new long[] { Tokens.Length, m.Model.Config.HiddenSize }, file[PeftKeys.TokenRowsKey(path)].Shape);
        }
        Assert.Contains("\"trainable_token_indices\": [", File.ReadAllText(Path.Combine(dir.File("ours"), PeftAdapterFiles.ConfigFile)));

        PythonReference.WriteAdapter(dir.File("model"), dir.File("theirs"), new[] { linear }, rank: 4, alpha: 8, dora: false, seed: 3, trainableTokens: Tokens);
        using var other = LoadTiny(dir, family);
        PeftAdapterFormat.Load(other.Adapters, dir.File("theirs"), "default");
        using var theirsHere = Logits(other);

        var reference = PythonReference.Run(new PythonReference.Job[] { new(dir.File("model"), dir.File("ours")), new(dir.File("model"), dir.File("theirs")) }, TinyFamilies.Ids, dir.Path);
        Assert.True(RelativeError(reference[0], ours) < Tolerance, $"{family}: ours in the reference {RelativeError(reference[0], ours):E2}");
        Assert.True(RelativeError(reference[1], theirsHere) < Tolerance, $"{family}: theirs here {RelativeError(reference[1], theirsHere):E2}");

        // The rows alone (LoRA off) on text without the trained tokens: only a tied head, which is the embedding, sees them.
        m.Adapters.Layers().ToList().ForEach(l => l.Layer.AdaptersDisabled = true);
        using (var unseen = tensor(new long[] { 1, 2, 4, 6, 7, 8, 9 }).unsqueeze(0))
        using (no_grad())
        {
            using var withRows = m.Model.forward(unseen);
            m.Adapters.Disable();
            using var without = m.Model.forward(unseen);
            m.Adapters.Enable();
            if (m.Model.Config.TieWordEmbeddings)
            {
                Assert.True((withRows[.., .., 3] - without[.., .., 3]).abs().max().item<float>() > 1e-3, "a tied head computes with the trained rows");
                using var index = tensor(Tokens.Select(t => (long)t).ToArray());
                using var keep = ones(withRows.shape[^1], ScalarType.Bool).index_fill_(0, index, false);
                Assert.True(Diff(without.index_select(-1, keep.nonzero().squeeze(1)), withRows.index_select(-1, keep.nonzero().squeeze(1))) < Tolerance, "other columns stay");
            }
            else
                Assert.True((withRows - without).abs().max().item<float>() == 0, "untied: tokens not in the text change nothing");
        }
        m.Adapters.Layers().ToList().ForEach(l => l.Layer.AdaptersDisabled = false);

        // Merge writes the rows into the weight (a tied head computes with them already): the same logits.
        using var embeddingBefore = m.Model.Decoder.Embedding.weight!.clone();
        Assert.Equal(new[] { "default" }, m.Adapters.Merge(null, safe: true));
        using (var merged = Logits(m)) Assert.True(Diff(ours, merged) < Tolerance, $"merge parity {Diff(ours, merged):E2}");
        HuggingFaceWriter.Save(m.Model, dir.File("merged"), overwrite: false);
        using (var back = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("merged") }))
        using (var reloaded = Logits(back))
            Assert.True(Diff(ours, reloaded) < Tolerance, "exported merged model");
        m.Adapters.Unmerge();
        Assert.True(m.Model.Decoder.Embedding.weight!.eq(embeddingBefore).all().item<bool>(), "unmerge writes the base rows back exactly");
        m.Adapters.Disable();
        using (var restored = Logits(m)) Assert.True(Diff(plain, restored) < Tolerance, "disabled: the base model (LoRA's merge and unmerge round in float32)");
    }

    [Fact]
    public void AtInitNothingChangesAndTrainingMovesOnlyTheNamedRows()
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, "qwen3");
        File.WriteAllText(dir.File("s.txt"), File.ReadAllText(SharedData.TinyShakespeare)[..20_000]);
        using var plain = Logits(m);
        using var baseWeight = m.Model.Decoder.Embedding.weight!.clone();
        var config = WithTokens("q_proj", 10, 11, 12) with { Init = LoraInit.Default };
        m.Adapters.Add("default", config, seed: 1);
        // Exact but for the tied head's recomputed columns (a smaller matmul, other rounding).
        using (var init = Logits(m)) Assert.True(Diff(plain, init) < 1e-6, $"rows start as the base rows, B at zero: {Diff(plain, init):E2}");
        // Rows that occur in the data, so they get gradient.
        var ids = m.Tokenizer!.Encode(File.ReadAllText(dir.File("s.txt"))[..2000]).GroupBy(i => i).OrderByDescending(g => g.Count()).Take(3).Select(g => (int)g.Key).ToArray();
        m.Adapters.Delete("default");
        Assert.IsNotType<TrainableTokensEmbedding>(m.Model.EmbeddingSlot().Module); // the embedding is free again
        m.Adapters.Add("default", WithTokens("q_proj", ids) with { Init = LoraInit.Default }, seed: 1);
        var result = Trainer.Run(m, new TrainingOptions { DataPaths = new[] { dir.File("s.txt") }, MaxSteps = 10, BatchSize = 2, SequenceLength = 8, LearningRate = 1e-2, MaxEvalWindows = 8, Seed = 1 });
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss, $"{result.InitialValidationLoss} → {result.FinalValidationLoss}");
        int layers = m.Model.Config.NumHiddenLayers;
        long lora = layers * 4L * (m.Model.Config.HiddenSize + m.Model.Config.NumAttentionHeads * m.Model.Config.HeadDim);
        Assert.Equal(lora + ids.Length * m.Model.Config.HiddenSize, result.TrainableParameters);
        var tokens = m.Adapters.TokenRowsLayer()!.Value.Layer;
        using (var index = tensor(ids.Select(i => (long)i).ToArray()))
        using (var startRows = baseWeight.index_select(0, index))
            Assert.True((tokens.Rows("default") - startRows).abs().max().item<float>() > 1e-4, "the named rows trained");
        Assert.True(m.Model.Decoder.Embedding.weight!.eq(baseWeight).all().item<bool>(), "the embedding weight itself stays frozen");
    }

    [Fact]
    public void ConfigsRoundTripInPeftsTwoForms()
    {
        var list = WithTokens("q_proj", 7, 3);
        var back = LoraConfig.FromJson(list.ToJson(), "list");
        Assert.Equal(new[] { 7, 3 }, back.TrainableTokenIndices![LoraConfig.InputEmbedding]);
        Assert.Contains("\"trainable_token_indices\": [\n    7,\n    3\n  ]", list.ToJson());
        var dict = LoraConfig.FromJson("""{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],"trainable_token_indices":{"embed_tokens":[1,2]}}""", "dict");
        Assert.Equal(new[] { 1, 2 }, dict.TrainableTokenIndices!["embed_tokens"]);
        Assert.Contains("\"embed_tokens\": [", dict.ToJson());
        var bad = Assert.Throws<LoraShellException>(() => LoraConfig.FromJson("""{"peft_type":"LORA","r":4,"target_modules":["q_proj"],"trainable_token_indices":[1,"x"]}""", "bad.json"));
        Assert.Equal("InvalidAdapterConfig", bad.ErrorId);
        Assert.Contains("integer token ids", bad.Message);
    }

    [Fact]
    public void BadTokenIndicesAreRefusedByName()
    {
        using var dir = new TempFolder();
        using var untied = LoadTiny(dir, "llama-linear");
        string Refusal(LoadedModel m, LoraConfig c) => Assert.Throws<LoraShellException>(() => m.Adapters.Add("x", c)).ErrorId;
        Assert.Equal("TokenIndexOutOfRange", Refusal(untied, WithTokens("q_proj", 5, 100_000)));
        Assert.Equal("InvalidTokenIndices", Refusal(untied, WithTokens("q_proj", 5, 5)));
        Assert.Equal("InvalidTokenIndices", Refusal(untied, WithTokens("q_proj", -1)));
        Assert.Equal("TrainableTokensOnUntiedHead", Refusal(untied, WithTokens("q_proj") with { TrainableTokenIndices = new Dictionary<string, IReadOnlyList<int>> { ["embed_tokens"] = new[] { 1 }, ["lm_head"] = new[] { 1 } } }));
        Assert.Equal("TrainableTokensModuleNotFound", Refusal(untied, WithTokens("q_proj") with { TrainableTokenIndices = new Dictionary<string, IReadOnlyList<int>> { ["wte"] = new[] { 1 } } }));
        Assert.Equal("TrainableTokensOverlap", Refusal(untied, WithTokens("q_proj", 1) with { ModulesToSave = new[] { "embed_tokens" } }));
        Assert.Equal("TrainableTokensOverlap", Refusal(untied, WithTokens("q_proj", 1) with { TargetModules = new[] { "q_proj", "embed_tokens" } }));
        Assert.Empty(untied.Adapters.Names); // nothing was added by a refused call
        Assert.IsNotType<TrainableTokensEmbedding>(untied.Model.EmbeddingSlot().Module);

        untied.Adapters.Add("a", WithTokens("q_proj", 1, 2));
        untied.Adapters.Add("b", WithTokens("v_proj", 3));
        Assert.Equal("TrainableTokensConflict", Assert.Throws<LoraShellException>(() => untied.Adapters.SetActive("a", "b")).ErrorId);
        Assert.Equal("EmbeddingAlreadyWrapped", Refusal(untied, new LoraConfig { TargetModules = new[] { "embed_tokens" } }));
        var gguf = Assert.Throws<LoraShellException>(() => GgufAdapterExport.Plan(untied.Adapters, "a", new List<string>()));
        Assert.Equal("GgufAdapterNotExpressible", gguf.ErrorId);
        var join = Assert.Throws<LoraShellException>(() => AdapterCombiner.Combine(untied.Adapters, "j", new AdapterCombination { Adapters = new[] { "a", "b" }, Weights = new[] { 0.5, 0.5 } }));
        Assert.Equal("CombinationNotSupported", join.ErrorId);

        // A file whose rows do not fit the config is refused with the cause named, and nothing is added.
        PeftAdapterFormat.Save(untied.Adapters, "a", dir.File("a"), overwrite: false, baseModelNameOrPath: null);
        string config = Path.Combine(dir.File("a"), PeftAdapterFiles.ConfigFile);
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"trainable_token_indices\": [\n    1,\n    2\n  ]", "\"trainable_token_indices\": [\n    1,\n    2,\n    3\n  ]"));
        using var fresh = LoadTiny(dir, "llama-linear");
        var e = Assert.Throws<LoraShellException>(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "a"));
        Assert.Equal("AdapterDoesNotMatchModel", e.ErrorId);
        Assert.Contains("2 token rows", e.Message);
        Assert.Empty(fresh.Adapters.Names);
    }

    /// <summary>The embedding is trained one way at a time; each refusal comes before anything changes (found in review).</summary>
    [Fact]
    public void TheEmbeddingIsTrainedOneWayAtATimeAndARefusalChangesNothing()
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, "llama-linear");
        string Refusal(LoraConfig c) => Assert.Throws<LoraShellException>(() => m.Adapters.Add("y", c)).ErrorId;

        m.Adapters.Add("saver", new LoraConfig { TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "embed_tokens" } });
        Assert.Equal("EmbeddingInUse", Refusal(WithTokens("v_proj", 5)));
        Assert.Equal("EmbeddingInUse", Refusal(new LoraConfig { TargetModules = new[] { "embed_tokens" } }));
        m.Adapters.Delete("saver");

        m.Adapters.Add("x", new LoraConfig { TargetModules = new[] { "embed_tokens" } });
        Assert.Equal("EmbeddingAlreadyWrapped", Refusal(WithTokens("q_proj", 5)));
        Assert.DoesNotContain(m.Adapters.Layers(), l => l.Layer.Adapters.Contains("y")); // no factors were left behind
        Assert.Equal("EmbeddingInUse", Refusal(new LoraConfig { TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "embed_tokens" } }));
        m.Adapters.Delete("x");
        m.Adapters.Add("y", WithTokens("q_proj", 5)); // the retry works once the embedding is free
        Assert.Equal(new[] { "y" }, m.Adapters.Names);
        Assert.Equal("EmbeddingInUse", Assert.Throws<LoraShellException>(() => m.Adapters.Add("z", new LoraConfig { ModulesToSave = new[] { "embed_tokens" } })).ErrorId);

        // Two adapters with rows: merging both where they overlap is refused (PEFT's _check_overlapping_tokens).
        m.Adapters.Add("z", WithTokens("v_proj", 5, 6));
        m.Adapters.SetActive("y");
        m.Adapters.Merge(new[] { "y" }, safe: true);
        Assert.Equal("TrainableTokensConflict", Assert.Throws<LoraShellException>(() => m.Adapters.Merge(new[] { "z" }, safe: true)).ErrorId);
        m.Adapters.Unmerge();
        m.Adapters.Unload();
        Assert.IsNotType<TrainableTokensEmbedding>(m.Model.EmbeddingSlot().Module);
    }

    [Fact]
    public void OnATiedModelTokenRowsAndAnUntyingCopyAreRefusedTogether()
    {
        using var dir = new TempFolder();
        using var m = LoadTiny(dir, "qwen3");
        m.Adapters.Add("rows", WithTokens("q_proj", 5));
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.Add("head", new LoraConfig { TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "lm_head" } }));
        Assert.Equal("TrainableTokensOverlap", e.ErrorId);
        Assert.True(m.Model.Config.TieWordEmbeddings);
        m.Adapters.Delete("rows");
        m.Adapters.Add("head", new LoraConfig { TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "lm_head" } });
        Assert.Equal("TrainableTokensOverlap", Assert.Throws<LoraShellException>(() => m.Adapters.Add("rows", WithTokens("q_proj", 5))).ErrorId);
    }
}
