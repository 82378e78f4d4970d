using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
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
    static string Python => Environment.GetEnvironmentVariable("LORASHELL_PYTHON") ?? "/usr/bin/python3";
    static string Script => RepositoryFiles.Find(Path.Combine("tests", "reference", "t5_reference.py"));

    static void RunReference(params string[] args)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Script);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"t5_reference.py {string.Join(' ', args)} failed:\n{stderr}");
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

        string jobs = dir.File("jobs.json");
        File.WriteAllText(jobs, new JsonArray(new JsonObject
        {
            ["model"] = model, ["input_ids"] = JsonSerializer.SerializeToNode(Inputs), ["labels"] = JsonSerializer.SerializeToNode(Labels),
            ["attention_mask"] = JsonSerializer.SerializeToNode(Masks), ["out"] = dir.File("out.json"),
        }).ToJsonString());
        RunReference("--jobs", jobs);
        var reference = JsonNode.Parse(File.ReadAllText(dir.File("out.json")))!;
        var theirs = reference["logits"]!.AsArray();
        double maxDiff = 0, scale = 0;
        for (int b = 0; b < ours.GetLength(0); b++)
            for (int t = 0; t < ours.GetLength(1); t++)
                for (int v = 0; v < ours.GetLength(2); v++)
                {
                    double r = (double)theirs[b]![t]![v]!;
                    maxDiff = Math.Max(maxDiff, Math.Abs(ours[b, t, v] - r));
                    scale = Math.Max(scale, Math.Abs(r));
                }
        Assert.True(scale > 0.5, $"logits too small to compare ({scale})");
        Assert.True(maxDiff / scale < 1e-4, $"{variant}: max |Δlogit| {maxDiff:E3} against the largest |logit| {scale:F3}");
        double theirLoss = (double)reference["loss"]!;
        Assert.True(Math.Abs(ourLoss - theirLoss) / theirLoss < 1e-4, $"{variant}: loss {ourLoss} vs reference {theirLoss}");
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
