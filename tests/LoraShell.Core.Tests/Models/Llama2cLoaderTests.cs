using LoraShell.Core.Models;
using LoraShell.Core.Session;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class Llama2cLoaderTests
{
    [Fact]
    public void Stories260KHeaderBecomesHfConfig()
    {
        var c = SharedData.Stories.Model.Config;
        Assert.Equal((64, 172, 5, 8, 4, 512, 512), (c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize, c.MaxPositionEmbeddings));
        Assert.True(c.TieWordEmbeddings);
        Assert.DoesNotContain(SharedData.Stories.Model.state_dict().Keys, k => k.StartsWith("lm_head"));
        var names = SharedData.Stories.Model.state_dict().Keys.ToHashSet();
        Assert.Contains("model.layers.4.self_attn.k_proj.weight", names);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", names);
        Assert.Contains("model.norm.weight", names);
        Assert.Equal(new long[] { 32, 64 }, SharedData.Stories.Model.state_dict()["model.layers.0.self_attn.k_proj.weight"].shape);
    }

    [Fact]
    public void RowPermutationMapsInterleavedPairsToHalves()
    {
        // One head of size 4: llama2.c rows (0,1) and (2,3) are rotation pairs; HF pairs (0,2) and (1,3).
        var w = arange(4, dtype: ScalarType.Float32).unsqueeze(1);
        var p = RopeRowOrder.ToRotateHalf(w, heads: 1);
        Assert.Equal(new float[] { 0, 2, 1, 3 }, p.flatten().data<float>().ToArray());
    }

    [Fact]
    public void RowPermutationBackToInterleavedPairsIsTheInverseForWeightsAndBiases()
    {
        // Two heads of size 6 (pairs (0,3),(1,4),(2,5) in HF order): interleaved order puts each pair side by side.
        var bias = arange(12, dtype: ScalarType.Float32);
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11 }, RopeRowOrder.ToInterleaved(bias, heads: 2).data<float>().ToArray());
        var w = randn(12, 5);
        TensorAssert.Identical(w, RopeRowOrder.ToRotateHalf(RopeRowOrder.ToInterleaved(w, 2), 2));
    }

    [Fact]
    public void Version1FileLoadsTheSameModelAsLegacy()
    {
        using var dir = new TempFolder();
        string v1 = dir.File("stories260K-v1.bin");
        Llama2cFiles.WriteVersion1FromLegacy(SharedData.Stories260K, v1);
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = v1, TokenizerPath = SharedData.Tok512 });
        using var _ = no_grad();
        var ids = tensor(new long[] { 1, 403, 407, 261, 378 }).unsqueeze(0);
        TensorAssert.Identical(SharedData.Stories.Model.forward(ids), loaded.Model.forward(ids));
    }

    [Fact]
    public void TruncatedFileIsRejected()
    {
        using var dir = new TempFolder();
        string path = dir.File("cut.bin");
        var bytes = File.ReadAllBytes(SharedData.Stories260K);
        File.WriteAllBytes(path, bytes[..20]);
        var e = Assert.Throws<LoraShellException>(() => Llama2cLoader.Load(path));
        Assert.Equal("InvalidLlama2cCheckpoint", e.ErrorId);
        Assert.Contains("shorter than the 28-byte header", e.Message);
    }

    [Fact]
    public void HeaderThatDisagreesWithFileLengthIsRejected()
    {
        using var dir = new TempFolder();
        string path = dir.File("short.bin");
        var bytes = File.ReadAllBytes(SharedData.Stories260K);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<LoraShellException>(() => Llama2cLoader.Load(path));
        Assert.Contains($"implies {bytes.Length} bytes, but the file has {bytes.Length - 1000}", e.Message);

        // A header claiming more layers than the file holds.
        BitConverter.GetBytes(6).CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        e = Assert.Throws<LoraShellException>(() => Llama2cLoader.Load(path));
        Assert.Contains("n_layers=6", e.Message);
    }

    [Fact]
    public void NonsenseHeaderIsRejected()
    {
        using var dir = new TempFolder();
        string path = dir.File("zero.bin");
        File.WriteAllBytes(path, new byte[64]);
        var e = Assert.Throws<LoraShellException>(() => Llama2cLoader.Load(path));
        Assert.Contains("must be positive", e.Message);
    }
}

/// <summary>Writes llama2.c files for tests by moving the float blocks of a legacy checkpoint.</summary>
static class Llama2cFiles
{
    public static void WriteVersion1FromLegacy(string legacyPath, string v1Path)
    {
        var bytes = File.ReadAllBytes(legacyPath);
        int[] h = Enumerable.Range(0, 7).Select(i => BitConverter.ToInt32(bytes, 4 * i)).ToArray();
        int d = h[0], hd = h[1], L = h[2], heads = h[3], kvh = h[4], v = Math.Abs(h[5]), seq = h[6];
        int kv = d / heads * kvh;
        long at = 28;
        byte[] Take(long floats) { var b = bytes.AsSpan((int)at, (int)(floats * 4)).ToArray(); at += floats * 4; return b; }
        var emb = Take((long)v * d); var rmsAtt = Take((long)L * d);
        var wq = Take((long)L * d * d); var wk = Take((long)L * kv * d); var wv = Take((long)L * kv * d); var wo = Take((long)L * d * d);
        var rmsFfn = Take((long)L * d); var w1 = Take((long)L * hd * d); var w2 = Take((long)L * d * hd); var w3 = Take((long)L * hd * d);
        var rmsFinal = Take(d);
        using var s = File.Create(v1Path);
        var header = new byte[256];
        BitConverter.GetBytes(0x616b3432u).CopyTo(header, 0);
        BitConverter.GetBytes(1).CopyTo(header, 4);
        for (int i = 0; i < 7; i++) BitConverter.GetBytes(i == 5 ? v : h[i]).CopyTo(header, 8 + 4 * i);
        header[36] = 1; // shared classifier
        s.Write(header);
        foreach (var block in new[] { rmsAtt, rmsFfn, rmsFinal, emb, wq, wk, wv, wo, w1, w2, w3 }) s.Write(block);
    }
}
