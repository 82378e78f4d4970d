using System.Text.Json.Nodes;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.Gguf;

/// <summary>
/// The GGUF container as LoraShell writes and reads it, and what it refuses: truncated files, counts and
/// lengths past the end of the file, overlapping or misaligned tensors, unknown types and architectures —
/// each a named error, never a crash or an allocation the size of the bogus number.
/// </summary>
public class GgufFileTests
{
    static string WriteSmall(TempFolder dir, Action<GgufWriter>? extra = null)
    {
        var w = new GgufWriter();
        w.Add("general.architecture", GgufValue.String("llama"));
        w.Add("adapter.lora.alpha", GgufValue.Float32(16));
        w.Add("x.tokens", GgufValue.Strings(new[] { "a", "▁b", "<0x0A>" }));
        w.Add("x.count", GgufValue.UInt32(7));
        w.AddTensor("m.weight", new long[] { 3, 64 }, GgmlType.F32, () => arange(192, dtype: ScalarType.Float32).reshape(3, 64));
        w.AddTensor("q.weight", new long[] { 2, 64 }, GgmlType.Q8_0, () => linspace(-1, 1, 128).reshape(2, 64));
        w.AddTensor("v", new long[] { 5 }, GgmlType.F32, () => ones(5));
        extra?.Invoke(w);
        string path = dir.File("small.gguf");
        using (var s = File.Create(path)) w.Write(s);
        return path;
    }

    [Fact]
    public void WrittenFileReadsBackWithTypesShapesAndValues()
    {
        using var dir = new TempFolder();
        using var f = GgufFile.Open(WriteSmall(dir));
        Assert.Equal(3u, f.Version);
        Assert.Equal(GgufValueType.Float32, f.Metadata["adapter.lora.alpha"].Type);
        Assert.Equal(16f, f.Metadata["adapter.lora.alpha"].Value);
        Assert.Equal(new[] { "a", "▁b", "<0x0A>" }, (string[])f.Metadata["x.tokens"].Value);
        Assert.Equal(new long[] { 64, 3 }, f.Tensor("m.weight").Dims); // innermost first
        Assert.Equal(new long[] { 3, 64 }, f.Tensor("m.weight").Shape);
        Assert.All(f.Tensors, t => Assert.Equal(0, (f.DataStart + t.Offset) % 32));
        var m = new float[192];
        f.ReadFloats(f.Tensor("m.weight"), m);
        Assert.Equal(Enumerable.Range(0, 192).Select(i => (float)i), m);
        // Q8_0: 32 values per block share one F16 scale (the block's largest |value| / 127), so each value
        // is within half a step of what was written.
        var q = new float[128];
        f.ReadFloats(f.Tensor("q.weight"), q);
        var written = linspace(-1, 1, 128).data<float>().ToArray();
        for (int i = 0; i < 128; i++)
        {
            float max = written.Skip(i / 32 * 32).Take(32).Max(Math.Abs);
            Assert.True(Math.Abs(q[i] - written[i]) <= max / 127 / 2 * 1.01 + 1e-7, $"value {i}: {q[i]} vs {written[i]}");
        }
    }

    static LoraShellException Refused(byte[] bytes, TempFolder dir)
    {
        string path = dir.File($"bad-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, bytes);
        return Assert.Throws<LoraShellException>(() => GgufFile.Open(path).Dispose());
    }

    [Fact]
    public void TruncatedFilesAreRefusedWhereverTheyEnd()
    {
        using var dir = new TempFolder();
        string path = WriteSmall(dir);
        var bytes = File.ReadAllBytes(path);
        long dataEnd;
        using (var f = GgufFile.Open(path)) dataEnd = f.Tensors.Max(t => f.DataStart + t.Offset + t.ByteLength);
        // Every cut, in the header and in the data, is a named error (the padding after the last tensor is not data).
        foreach (long length in new long[] { 0, 3, 10, 23, 30, 60, 120, 200, 300, dataEnd - 700, dataEnd - 1 })
        {
            var e = Refused(bytes[..(int)length], dir);
            Assert.Equal("InvalidGguf", e.ErrorId);
        }
        Assert.Contains("truncated", Refused(bytes[..(int)(dataEnd - 1)], dir).Message);
    }

    [Fact]
    public void CountsAndLengthsPastTheFileAreRefusedWithoutAllocating()
    {
        using var dir = new TempFolder();
        var good = File.ReadAllBytes(WriteSmall(dir));
        byte[] With(int offset, ulong value) { var b = (byte[])good.Clone(); BitConverter.GetBytes(value).CopyTo(b, offset); return b; }
        Assert.Contains("tensor count", Refused(With(8, ulong.MaxValue), dir).Message);
        Assert.Contains("metadata count", Refused(With(16, 1UL << 60), dir).Message);
        // The first key's length (offset 24) claiming 2^62 bytes.
        Assert.Contains("claims", Refused(With(24, 1UL << 62), dir).Message);
        // An array length: x.tokens' count sits after its key, type and element type.
        int key = FindAscii(good, "x.tokens");
        Assert.Contains("array length", Refused(With(key + "x.tokens".Length + 8, 1UL << 50), dir).Message);
    }

    [Fact]
    public void BadMagicVersionTypesAndOverlapsAreNamed()
    {
        using var dir = new TempFolder();
        var good = File.ReadAllBytes(WriteSmall(dir));
        var noMagic = (byte[])good.Clone(); noMagic[0] = (byte)'X';
        Assert.Contains("magic", Refused(noMagic, dir).Message);
        var v1 = (byte[])good.Clone(); BitConverter.GetBytes(1u).CopyTo(v1, 4);
        Assert.Contains("version 1", Refused(v1, dir).Message);
        var bigEndian = (byte[])good.Clone(); BitConverter.GetBytes(0x03000000u).CopyTo(bigEndian, 4);
        Assert.Contains("big-endian", Refused(bigEndian, dir).Message);

        // Tensor "v": name, n_dims, ne[0], type, offset — set its type to 99, then its offset onto "m.weight".
        int v = FindAscii(good, "v\u0001\0\0\0") ;
        int typeAt = v + 1 + 4 + 8;
        var unknownType = (byte[])good.Clone(); BitConverter.GetBytes(99u).CopyTo(unknownType, typeAt);
        Assert.Contains("tensor type 99", Refused(unknownType, dir).Message);
        var overlap = (byte[])good.Clone(); BitConverter.GetBytes(0UL).CopyTo(overlap, typeAt + 4);
        Assert.Contains("overlap", Refused(overlap, dir).Message);
        var misaligned = (byte[])good.Clone(); BitConverter.GetBytes(8UL).CopyTo(misaligned, typeAt + 4);
        Assert.Contains("alignment", Refused(misaligned, dir).Message);
    }

    static int FindAscii(byte[] haystack, string needle)
    {
        var n = System.Text.Encoding.UTF8.GetBytes(needle);
        for (int i = 0; i + n.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, n.Length).SequenceEqual(n)) return i;
        throw new InvalidOperationException($"'{needle}' not in the file");
    }

    [Fact]
    public void ModelsOfOtherArchitecturesAdaptersAndNonGgufFilesAreRefusedByName()
    {
        using var dir = new TempFolder();
        string other = WriteSmall(dir, w => w.Add("general.name", GgufValue.String("x")));
        var bytes = File.ReadAllBytes(other);
        // "llama" → "mamba": an architecture LoraShell does not implement.
        int at = FindAscii(bytes, "llama");
        System.Text.Encoding.ASCII.GetBytes("mamba").CopyTo(bytes, at);
        File.WriteAllBytes(other, bytes);
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = other }));
        Assert.Equal("UnsupportedGgufArchitecture", e.ErrorId);
        Assert.Contains("'mamba'", e.Message);

        string adapter = dir.File("adapter.gguf");
        var w = new GgufWriter();
        w.Add("general.architecture", GgufValue.String("llama"));
        w.Add("general.type", GgufValue.String("adapter"));
        using (var s = File.Create(adapter)) w.Write(s);
        Assert.Equal("GgufIsAnAdapter", Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = adapter })).ErrorId);

        string fake = dir.File("model.gguf");
        File.WriteAllText(fake, "not a gguf");
        Assert.Equal("InvalidGguf", Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = fake })).ErrorId);
    }

    [Fact]
    public void ATensorOfATypeLoraShellDoesNotReadIsNamedWhenRead()
    {
        using var dir = new TempFolder();
        var bytes = File.ReadAllBytes(WriteSmall(dir));
        // "m.weight" is 3 rows of 64 floats (768 bytes); as Q8_1 (ggml's activation type: blocks of 32 in 36
        // bytes) it needs only 216: a valid file whose tensor LoraShell cannot decode.
        int m = FindAscii(bytes, "m.weight");
        int typeAt = m + "m.weight".Length + 4 + 2 * 8;
        BitConverter.GetBytes((uint)GgmlType.Q8_1).CopyTo(bytes, typeAt);
        string path = dir.File("iq.gguf");
        File.WriteAllBytes(path, bytes);
        using var f = GgufFile.Open(path);
        var e = Assert.Throws<LoraShellException>(() => f.ReadFloats(f.Tensor("m.weight"), new float[192]));
        Assert.Equal("UnsupportedGgufTensorType", e.ErrorId);
        Assert.Contains("Q8_1", e.Message);
        Assert.Contains("Q4_K", e.Message); // and says what it does read
    }

    public static IEnumerable<object[]> Families => TinyFamilies.All.Select(c => new object[] { c.Name });

    /// <summary>What tools pick the model class by: transformers' own class names.</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void EveryFamilysExportNamesTransformersClass(string name)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        string expected = c.Config["model_type"]!.GetValue<string>() switch
        {
            "llama" => "LlamaForCausalLM", "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM",
            "qwen3" => "Qwen3ForCausalLM", "phi3" => "Phi3ForCausalLM", "gpt2" => "GPT2LMHeadModel",
            var t => throw new InvalidOperationException($"no class known for {t}"),
        };
        using var dir = new TempFolder();
        using (var model = TinyFamilies.Create(c)) HuggingFaceWriter.Save(model, dir.File("hf"), overwrite: false);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("hf/config.json")))!;
        Assert.Equal(expected, config["architectures"]![0]!.GetValue<string>());
    }

    [Fact]
    public void AConvertedLlama2cCheckpointNamesLlamaForCausalLM()
    {
        using var dir = new TempFolder();
        SharedData.Stories.SaveHuggingFace(dir.File("hf"), overwrite: false);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("hf/config.json")))!;
        Assert.Equal("LlamaForCausalLM", config["architectures"]![0]!.GetValue<string>());
    }
}
