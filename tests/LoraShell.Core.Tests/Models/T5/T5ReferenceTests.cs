using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.Inference;
using LoraShell.Core.Models.T5;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.T5;

/// <summary>
/// T5 against tests/reference/t5_reference.py, an independent float64 T5 written from transformers'
/// modeling_t5.py: random t5 (relu, tied head) and t5 v1.1 (gated-gelu, untied lm_head, more decoder
/// than encoder layers) checkpoints, written by the reference in Hugging Face's layout, give the same
/// logits and loss here, padding and ignored labels included; cached greedy decoding equals recomputing
/// every step.
/// </summary>
public class T5ReferenceTests
{
    static void RunReference(params string[] args)
    {
        var (exitCode, _, stderr) = ReferenceScripts.Run("t5_reference.py", args);
        Assert.True(exitCode == 0, $"t5_reference.py {string.Join(' ', args)} failed:\n{stderr}");
    }

    static readonly long[][] Inputs = { new long[] { 5, 17, 42, 8, 63, 1 }, new long[] { 9, 33, 71, 1, 0, 0 } };
    static readonly long[][] Masks = { new long[] { 1, 1, 1, 1, 1, 1 }, new long[] { 1, 1, 1, 1, 0, 0 } };
    static readonly long[][] Labels = { new long[] { 12, 88, 4, 27, 1 }, new long[] { 50, 2, 1, -100, -100 } };

    [Theory]
    [InlineData("t5")]
    [InlineData("v1_1")]
    public void LogitsAndLossEqualTheFloat64Reference(string variant)
    {
        using var dir = new TempFolder();
        string model = dir.File(variant);
        RunReference("--write-random", model, "--variant", variant, "--seed", "11");
        var warnings = new List<string>();
        using var t5 = T5Loader.Load(model, warnings.Add);
        Assert.Equal(variant == "t5", t5.Config.TieWordEmbeddings);
        Assert.Equal(variant == "v1_1", t5.Config.GatedFeedForward);

        double[,,] ours;
        double ourLoss;
        using (no_grad())
        {
            var (logits, loss) = t5.LogitsAndLoss(Tensor(Inputs), Tensor(Labels), Tensor(Masks));
            ours = ToArray(logits);
            ourLoss = loss.item<float>();
        }

        var (theirs, theirLoss) = Reference(dir, model);
        double error = RelativeError(ours, theirs);
        Assert.True(error < 1e-4, $"{variant}: max |Δlogit| / max |logit| = {error:E3}");
        Assert.True(Math.Abs(ourLoss - theirLoss) / theirLoss < 1e-4, $"{variant}: loss {ourLoss} vs reference {theirLoss}");
    }

    /// <summary>The reference's logits and loss for the test batch, with a PEFT adapter applied when given.</summary>
    static (double[,,] Logits, double Loss) Reference(TempFolder dir, string model, string? adapter = null)
    {
        string jobs = dir.File("jobs.json"), output = dir.File($"out-{Guid.NewGuid():N}.json");
        File.WriteAllText(jobs, new JsonArray(new JsonObject
        {
            ["model"] = model, ["adapter"] = adapter, ["input_ids"] = JsonSerializer.SerializeToNode(Inputs), ["labels"] = JsonSerializer.SerializeToNode(Labels),
            ["attention_mask"] = JsonSerializer.SerializeToNode(Masks), ["out"] = output,
        }).ToJsonString());
        RunReference("--jobs", jobs);
        var reference = JsonNode.Parse(File.ReadAllText(output))!;
        var rows = reference["logits"]!.AsArray();
        var logits = new double[rows.Count, rows[0]!.AsArray().Count, rows[0]![0]!.AsArray().Count];
        for (int b = 0; b < logits.GetLength(0); b++)
            for (int t = 0; t < logits.GetLength(1); t++)
                for (int v = 0; v < logits.GetLength(2); v++) logits[b, t, v] = (double)rows[b]![t]![v]!;
        return (logits, (double)reference["loss"]!);
    }

    /// <summary>max |ours − theirs| over max |theirs| (theirs must be large enough to compare against).</summary>
    static double RelativeError(double[,,] ours, double[,,] theirs)
    {
        double maxDiff = 0, scale = 0;
        for (int b = 0; b < ours.GetLength(0); b++)
            for (int t = 0; t < ours.GetLength(1); t++)
                for (int v = 0; v < ours.GetLength(2); v++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(ours[b, t, v] - theirs[b, t, v]));
                    scale = Math.Max(scale, Math.Abs(theirs[b, t, v]));
                }
        Assert.True(scale > 0.5, $"logits too small to compare ({scale})");
        return maxDiff / scale;
    }

    static double[,,] OurLogits(T5ForConditionalGeneration t5)
    {
        using var _ = no_grad();
        return ToArray(t5.LogitsAndLoss(Tensor(Inputs), Tensor(Labels), Tensor(Masks)).Logits);
    }

    [Theory]
    [InlineData("t5", "q,v")]
    [InlineData("v1_1", "q,k,v,o,wi_0,wi_1,wo")]
    public void PeftAdaptersMoveBothWaysAndMergeWithoutChangingTheLogits(string variant, string targets)
    {
        using var dir = new TempFolder();
        string model = dir.File(variant), theirs = dir.File("theirs"), ours = dir.File("ours");
        RunReference("--write-random", model, "--variant", variant, "--seed", "7");
        RunReference("--write-adapter", theirs, "--model", model, "--targets", targets, "--rank", "4", "--alpha", "8", "--seed", "9");
        using var t5 = T5Loader.Load(model);
        var plain = OurLogits(t5);
        var adapters = new Core.Lora.LoraAdapterSet(t5);

        // Written there, read here: the same logits as the reference with the adapter applied.
        var config = Core.Lora.PeftAdapterFormat.Load(adapters, theirs, "theirs");
        Assert.Equal("SEQ_2_SEQ_LM", config.TaskType);
        // Both stacks: an attention name in each encoder block and twice (self, cross) in each decoder block.
        int encoderBlocks = 2, decoderBlocks = variant == "t5" ? 2 : 3;
        int expectedModules = targets.Split(',').Sum(t => t is "q" or "k" or "v" or "o" ? encoderBlocks + 2 * decoderBlocks : encoderBlocks + decoderBlocks);
        Assert.Equal(expectedModules, adapters.Layers().Count());
        adapters.SetActive("theirs");
        var loaded = OurLogits(t5);
        var (reference, _) = Reference(dir, model, theirs);
        Assert.True(RelativeError(loaded, reference) < 1e-4, $"{variant}: PEFT adapter read here {RelativeError(loaded, reference):E3}");
        Assert.True(RelativeError(plain, reference) > 1e-3, "the adapter should change the logits");

        // Merged into the weights and back: the logits stay.
        var parity = Core.Lora.MergeParityCheck.Merge(adapters, new[] { "theirs" });
        Assert.True(parity.Relative < 1e-5, $"merge parity {parity.Relative:E3}");
        Assert.True(RelativeError(OurLogits(t5), reference) < 1e-4);
        adapters.Unmerge();

        // Made here (T5's PEFT targets, B not zero), read there.
        adapters.Add("ours", new Core.Lora.LoraConfig { R = 2, LoraAlpha = 4, TargetModules = new[] { "q", "v" }, TaskType = "SEQ_2_SEQ_LM" }, seed: 5);
        using (no_grad())
            foreach (var (_, layer) in adapters.Layers().Where(l => l.Layer.Adapters.Contains("ours")))
                nn.init.normal_(layer.lora_B["ours"].weight!, 0, 0.05);
        adapters.SetActive("ours");
        Core.Lora.PeftAdapterFormat.Save(adapters, "ours", ours, overwrite: false, baseModelNameOrPath: model);
        Assert.Contains("\"task_type\": \"SEQ_2_SEQ_LM\"", File.ReadAllText(Path.Combine(ours, "adapter_config.json")));
        var (theirsForOurs, _) = Reference(dir, model, ours);
        Assert.True(RelativeError(OurLogits(t5), theirsForOurs) < 1e-4, $"{variant}: adapter saved here {RelativeError(OurLogits(t5), theirsForOurs):E3}");
    }

    [Theory]
    [InlineData("t5")]
    [InlineData("v1_1")]
    public void CachedGreedyDecodingEqualsFullRecomputation(string variant)
    {
        using var dir = new TempFolder();
        RunReference("--write-random", dir.File(variant), "--variant", variant, "--seed", "5");
        using var t5 = T5Loader.Load(dir.File(variant));
        var (cachedTokens, cachedLogits) = T5Generation.Greedy(t5, Inputs[0], maxNewTokens: 12, useCache: true);
        var (fullTokens, fullLogits) = T5Generation.Greedy(t5, Inputs[0], maxNewTokens: 12, useCache: false);
        Assert.Equal(fullTokens, cachedTokens);
        Assert.True(cachedTokens.Count >= 2, "decoding stopped at once");
        for (int step = 0; step < fullLogits.Count; step++)
            for (int v = 0; v < fullLogits[step].Length; v++)
                Assert.True(Math.Abs(fullLogits[step][v] - cachedLogits[step][v]) < 1e-4, $"step {step}, token {v}: {fullLogits[step][v]} vs {cachedLogits[step][v]}");
    }

    [Fact]
    public void BucketsAreTheOnesWorkedOutByHand()
    {
        // The same worked values as t5_reference.py's selftest: 32 buckets, max distance 128.
        var rel = tensor(new long[] { -200, -128, -20, -8, -1, 0, 1, 7, 8, 15, 16, 100, 500 });
        Assert.Equal(new long[] { 15, 15, 10, 8, 1, 0, 17, 23, 24, 25, 26, 31, 31 }, RelativePositionBias.Buckets(rel, true, 32, 128).data<long>().ToArray());
        Assert.Equal(new long[] { 31, 31, 17, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, RelativePositionBias.Buckets(rel, false, 32, 128).data<long>().ToArray());
    }

    [Fact]
    public void ACheckpointThatDoesNotFitItsConfigIsRefusedByName()
    {
        using var dir = new TempFolder();
        string model = dir.File("t5");
        RunReference("--write-random", model, "--variant", "t5", "--seed", "1");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!.AsObject();
        config["d_ff"] = 64;
        File.WriteAllText(Path.Combine(model, "config.json"), config.ToJsonString());
        var e = Assert.Throws<LoraShellException>(() => T5Loader.Load(model));
        Assert.Equal("WeightsDoNotMatchModel", e.ErrorId);
        Assert.Contains("DenseReluDense.wi.weight", e.Message);
        config["feed_forward_proj"] = "gated-gelu-x";
        File.WriteAllText(Path.Combine(model, "config.json"), config.ToJsonString());
        Assert.Equal("InvalidModelConfig", Assert.Throws<LoraShellException>(() => T5Loader.Load(model)).ErrorId);
    }

    static Tensor Tensor(long[][] rows) => tensor(rows.SelectMany(r => r).ToArray(), new long[] { rows.Length, rows[0].Length });

    static double[,,] ToArray(Tensor t)
    {
        var values = t.to(ScalarType.Float64).cpu().data<double>().ToArray();
        long b = t.shape[0], n = t.shape[1], v = t.shape[2];
        var result = new double[b, n, v];
        for (long i = 0; i < values.Length; i++) result[i / (n * v), i / v % n, i % v] = values[i];
        return result;
    }
}
