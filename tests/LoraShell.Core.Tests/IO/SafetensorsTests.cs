using System.Text;
using LoraShell.Core.IO;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class SafetensorsTests
{
    [Fact]
    public void RoundTripKeepsEveryDTypeShapeAndValue()
    {
        using var dir = new TempFolder();
        var tensors = new Dictionary<string, Tensor>
        {
            ["a.f32"] = randn(3, 5),
            ["b.bf16"] = randn(4, 2).to(ScalarType.BFloat16),
            ["c.f16"] = randn(7).to(ScalarType.Float16),
            ["d.i64"] = arange(6, dtype: ScalarType.Int64).reshape(2, 3),
            ["e.empty"] = zeros(0, 4),
        };
        string path = dir.File("x.safetensors");
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(tensors.Keys.OrderBy(k => k), file.Names.OrderBy(k => k));
        foreach (var (name, expected) in tensors)
        {
            using var actual = file.ReadTensor(name);
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            TensorAssert.Identical(expected, actual, name);
        }
        // Header is padded to 8 bytes, as the format recommends.
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(0UL, BitConverter.ToUInt64(bytes, 0) % 8);
    }

    static string WriteRaw(TempFolder dir, string header, int dataBytes, long? declaredLength = null)
    {
        string path = dir.File("bad.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var s = File.Create(path);
        s.Write(BitConverter.GetBytes((ulong)(declaredLength ?? h.Length)));
        s.Write(h);
        s.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 1_000_000L, "runs past the end of the file")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],", 8, null, "not valid JSON")]
    [InlineData("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, null, "unknown dtype 'Q4'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, null, "overlaps")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, null, "outside the file")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, null, "but data_offsets span 8 bytes")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, null, "not a non-negative integer")]
    [InlineData("[1,2]", 0, null, "not a JSON object")]
    // What the format forbids and the reference implementation rejects: a repeated name (a JSON parser
    // would keep the last), bytes that belong to no tensor between two, and bytes after the last.
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, null, "names this tensor twice")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, null, "bytes [4, 8) of the data section belong to no tensor")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, null, "5 bytes follow the last tensor's data")]
    public void MalformedFilesGetSpecificErrors(string header, int dataBytes, long? declared, string expected)
    {
        using var dir = new TempFolder();
        string path = WriteRaw(dir, header, dataBytes, declared);
        var e = Assert.Throws<LoraShellException>(() => SafetensorsFile.Open(path));
        Assert.Equal(LoraErrorKind.InvalidData, e.Kind);
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ErrorNamesTheTensor()
    {
        using var dir = new TempFolder();
        string path = WriteRaw(dir, "{\"layer.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
        var e = Assert.Throws<LoraShellException>(() => SafetensorsFile.Open(path));
        Assert.Contains("'layer.weight'", e.Message);
    }

    [Fact]
    public void TooShortFileIsRejected()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(dir.File("tiny.safetensors"), new byte[3]);
        var e = Assert.Throws<LoraShellException>(() => SafetensorsFile.Open(dir.File("tiny.safetensors")));
        Assert.Contains("shorter than the 8-byte header length", e.Message);
    }

    [Fact]
    public void FailedWriteLeavesNoFileBehind()
    {
        using var dir = new TempFolder();
        var bad = new Dictionary<string, Tensor> { ["x"] = ones(2), ["y"] = ones(2, dtype: ScalarType.ComplexFloat32) };
        Assert.Throws<LoraShellException>(() => SafetensorsWriter.Write(dir.File("out.safetensors"), bad));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
