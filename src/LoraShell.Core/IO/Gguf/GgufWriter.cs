using System.Runtime.InteropServices;
using System.Text;
using static TorchSharp.torch;

namespace LoraShell.Core.IO.Gguf;

/// <summary>
/// Writes a GGUF file (version 3, little-endian, 32-byte alignment): metadata in the order added, then
/// every tensor's description, then the data. Tensors are produced one at a time by their callbacks and
/// converted to their ggml type a block of rows at a time, so the peak is one float tensor, not the file.
/// </summary>
public sealed class GgufWriter
{
    const uint Version = 3;
    readonly List<KeyValuePair<string, GgufValue>> _metadata = new();
    readonly List<(GgufTensorInfo Info, Func<Tensor> Data)> _tensors = new();
    long _dataBytes;

    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata => _metadata;
    public IEnumerable<GgufTensorInfo> Tensors => _tensors.Select(t => t.Info);
    /// <summary>Bytes of the data section (tensors with their alignment padding).</summary>
    public long DataBytes => _dataBytes;

    public void Add(string key, GgufValue value)
    {
        if (_metadata.Any(p => p.Key == key)) throw new ArgumentException($"metadata key '{key}' added twice");
        _metadata.Add(KeyValuePair.Create(key, value));
    }

    /// <param name="shape">PyTorch order ([out, in] for a matrix); stored innermost first</param>
    /// <param name="data">a float32 CPU tensor of that shape, produced when the writer reaches it</param>
    public void AddTensor(string name, long[] shape, GgmlType type, Func<Tensor> data)
    {
        if (!GgmlTypes.CanWrite(type)) throw new ArgumentException($"LoraShell does not write {GgmlTypes.Name(type)} tensors");
        if (_tensors.Any(t => t.Info.Name == name)) throw new ArgumentException($"tensor '{name}' added twice");
        var info = new GgufTensorInfo(name, shape.Reverse().ToArray(), type, _dataBytes);
        _tensors.Add((info, data));
        _dataBytes = Align(_dataBytes + info.ByteLength);
    }

    static long Align(long n) => (n + GgufFile.DefaultAlignment - 1) / GgufFile.DefaultAlignment * GgufFile.DefaultAlignment;

    /// <summary>Writes the file to <paramref name="stream"/>; <paramref name="tensorWritten"/> is told each tensor's name as it is done.</summary>
    public void Write(Stream stream, Action<string>? tensorWritten = null, CancellationToken cancel = default)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            WriteValue(w, value);
        }
        foreach (var (info, _) in _tensors)
        {
            WriteString(w, info.Name);
            w.Write((uint)info.Dims.Length);
            foreach (var d in info.Dims) w.Write((ulong)d);
            w.Write((uint)info.Type);
            w.Write((ulong)info.Offset);
        }
        Pad(w);
        long dataStart = w.BaseStream.Position;
        foreach (var (info, data) in _tensors)
        {
            cancel.ThrowIfCancellationRequested();
            if (w.BaseStream.Position - dataStart != info.Offset) throw new InvalidOperationException($"tensor '{info.Name}' landed at {w.BaseStream.Position - dataStart}, expected {info.Offset}");
            using (var scope = NewDisposeScope())
            {
                var t = data();
                if (!t.shape.SequenceEqual(info.Shape))
                    throw new InvalidOperationException($"tensor '{info.Name}' was declared {info.ShapeText} but produced [{string.Join(", ", t.shape)}]");
                WriteData(w, info, t.to(ScalarType.Float32).cpu().contiguous());
            }
            Pad(w);
            tensorWritten?.Invoke(info.Name);
        }
        w.Flush();
    }

    /// <summary>Converts and writes a block of rows at a time (at most 4 MiB of floats), whatever the tensor's size.</summary>
    static void WriteData(BinaryWriter w, GgufTensorInfo info, Tensor t)
    {
        long rowLength = info.Dims[0], rows = info.ElementCount / rowLength;
        long rowBytes = GgmlTypes.RowBytes(info.Type, rowLength);
        long rowsPerChunk = Math.Max(1, (1L << 20) / rowLength);
        var flat = t.reshape(rows, rowLength);
        var buffer = new byte[Math.Min(rows, rowsPerChunk) * rowBytes];
        for (long row = 0; row < rows; row += rowsPerChunk)
        {
            long n = Math.Min(rowsPerChunk, rows - row);
            using var chunk = flat.narrow(0, row, n).contiguous();
            var floats = MemoryMarshal.Cast<byte, float>(chunk.bytes);
            var bytes = buffer.AsSpan(0, (int)(n * rowBytes));
            GgmlTypes.Quantize(info.Type, floats, bytes);
            w.Write(bytes);
        }
    }

    static void Pad(BinaryWriter w)
    {
        long at = w.BaseStream.Position;
        long padded = Align(at);
        for (long i = at; i < padded; i++) w.Write((byte)0);
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static void WriteValue(BinaryWriter w, GgufValue v)
    {
        if (v.Type == GgufValueType.Array)
        {
            var items = (System.Array)v.Value;
            w.Write((uint)v.ElementType);
            w.Write((ulong)items.Length);
            foreach (var item in items) WriteScalar(w, v.ElementType, item!);
        }
        else WriteScalar(w, v.Type, v.Value);
    }

    static void WriteScalar(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt8: w.Write(Convert.ToByte(value)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(value)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(value)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(value)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(value)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(value)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(value)); break;
            case GgufValueType.Bool: w.Write((byte)((bool)value ? 1 : 0)); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(value)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(value)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(value)); break;
            default: throw new ArgumentException($"cannot write a {type} scalar");
        }
    }
}
