using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// A safetensors file opened for reading, tensor at a time: the header is parsed and validated up
/// front (header length, JSON, dtypes, shape × dtype size = byte span, offsets inside the file and
/// non-overlapping); tensor bytes are read from disk only when asked for, never the whole file at once.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused (the format's reference implementation uses 100 MB).</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    readonly FileStream _stream;
    readonly long _dataStart;
    readonly Dictionary<string, SafetensorsEntry> _entries;

    SafetensorsFile(string path, FileStream stream, long dataStart, Dictionary<string, SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        FilePath = path;
        _stream = stream;
        _dataStart = dataStart;
        _entries = entries;
        Metadata = metadata;
    }

    public string FilePath { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<SafetensorsEntry> Entries => _entries.Values;
    public IEnumerable<string> Names => _entries.Keys;
    public bool Contains(string name) => _entries.ContainsKey(name);
    public SafetensorsEntry this[string name] => _entries.TryGetValue(name, out var e) ? e
        : throw LoraShellException.NotFound("TensorNotFound", $"'{FilePath}' has no tensor named '{name}'.", name);

    public static SafetensorsFile Open(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw LoraShellException.NotFound("SafetensorsFileNotFound", $"Safetensors file '{full}' does not exist.", full);
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            var (dataStart, entries, metadata) = ReadHeader(full, stream);
            return new SafetensorsFile(full, stream, dataStart, entries, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    static LoraShellException Bad(string file, string problem, string? tensor = null)
        => LoraShellException.InvalidData("InvalidSafetensors",
            tensor == null ? $"Invalid safetensors file '{file}': {problem}." : $"Invalid safetensors file '{file}', tensor '{tensor}': {problem}.",
            file);

    static (long, Dictionary<string, SafetensorsEntry>, IReadOnlyDictionary<string, string>) ReadHeader(string file, FileStream stream)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad(file, $"file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength == 0) throw Bad(file, "header length is 0");
        if (headerLength > (ulong)MaxHeaderBytes) throw Bad(file, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        if (8 + (long)headerLength > fileLength)
            throw Bad(file, $"header length {headerLength} runs past the end of the file ({fileLength} bytes)");

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(headerBytes); }
        catch (JsonException e) { throw Bad(file, $"header is not valid JSON ({e.Message})"); }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(file, "header is not a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object) throw Bad(file, "__metadata__ is not an object");
                    foreach (var m in property.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                // JSON allows a repeated key and a parser keeps the last; the format forbids it, and
                // silently loading one of two different tensors is worse than refusing the file.
                if (entries.ContainsKey(property.Name)) throw Bad(file, "the header names this tensor twice", property.Name);
                entries[property.Name] = ParseEntry(file, property.Name, property.Value, dataLength);
            }

            // As the reference implementation requires: the tensors' byte spans tile the data section
            // exactly — no overlap, no hole between them, nothing after the last.
            long expected = 0;
            foreach (var e in entries.Values.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
            {
                if (e.Begin < expected)
                    throw Bad(file, $"data of '{e.Name}' [{e.Begin}, {e.End}) overlaps the tensor before it (which ends at {expected})", e.Name);
                if (e.Begin > expected)
                    throw Bad(file, $"bytes [{expected}, {e.Begin}) of the data section belong to no tensor (a hole before '{e.Name}')", e.Name);
                expected = e.End;
            }
            if (expected != dataLength)
                throw Bad(file, $"{dataLength - expected} bytes follow the last tensor's data (at data offset {expected}, file offset {dataStart + expected}); the file is longer than its header says");
            return (dataStart, entries, metadata);
        }
    }

    static SafetensorsEntry ParseEntry(string file, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object) throw Bad(file, "entry is not an object", name);
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad(file, "missing string 'dtype'", name);
        string dtype = dtypeElement.GetString()!;
        if (!SafetensorsDType.TryParse(dtype, out _, out int elementSize))
            throw Bad(file, $"unknown dtype '{dtype}' (expected one of {string.Join(", ", SafetensorsDType.Names)})", name);

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad(file, "missing array 'shape'", name);
        var shape = new List<long>();
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw Bad(file, $"shape {shapeElement.GetRawText()} has an entry that is not a non-negative integer", name);
            shape.Add(dim);
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Bad(file, "missing 'data_offsets' [begin, end]", name);
        if (!offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad(file, $"data_offsets {offsets.GetRawText()} are not 0 <= begin <= end", name);
        if (end > dataLength)
            throw Bad(file, $"data_offsets [{begin}, {end}) lie outside the file's {dataLength}-byte data section", name);

        long elements, bytes;
        try { elements = shape.Aggregate(1L, (a, b) => checked(a * b)); bytes = checked(elements * elementSize); }
        catch (OverflowException) { throw Bad(file, $"shape [{string.Join(", ", shape)}] is too large", name); }
        if (bytes != end - begin)
            throw Bad(file, $"shape [{string.Join(", ", shape)}] × {dtype} ({elementSize} bytes) = {elements * elementSize} bytes, but data_offsets span {end - begin} bytes", name);

        return new SafetensorsEntry(name, dtype, shape.ToArray(), begin, end);
    }

    /// <summary>Reads one tensor into a new CPU tensor of the stored dtype.</summary>
    public Tensor ReadTensor(string name)
    {
        var entry = this[name];
        SafetensorsDType.TryParse(entry.DType, out var type, out _);
        var tensor = empty(entry.Shape, dtype: type, device: CPU);
        if (entry.ByteLength == 0) return tensor;
        lock (_stream)
        {
            _stream.Seek(_dataStart + entry.Begin, SeekOrigin.Begin);
            try { TensorBytes.ReadInto(tensor, _stream, entry.ByteLength); }
            catch (EndOfStreamException) { tensor.Dispose(); throw Bad(FilePath, "file ended while reading the tensor's bytes", name); }
        }
        return tensor;
    }

    public void Dispose() => _stream.Dispose();
}
