using System.Text;

namespace LoraShell.Core.IO.Gguf;

/// <summary>
/// A GGUF file (versions 2 and 3, little-endian) opened for reading, tensor at a time. The header is
/// read and checked up front the way <see cref="SafetensorsFile"/> checks its header: every length and
/// count against the bytes the file still has (a string or array cannot claim more than remains, so a
/// corrupt count is an error, never a huge allocation), every tensor's type known, its dimensions
/// positive and their product bounded, its data aligned, inside the file and not overlapping another.
/// Tensor bytes are read only when asked for.
/// </summary>
public sealed class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian uint32
    public const int DefaultAlignment = 32;
    public const string AlignmentKey = "general.alignment";
    const int MaxDims = 4; // GGML_MAX_DIMS
    const long MaxKeyBytes = 1 << 16;

    readonly FileStream _stream;
    readonly Dictionary<string, GgufTensorInfo> _tensors;

    GgufFile(string path, FileStream stream, uint version, IReadOnlyDictionary<string, GgufValue> metadata, List<GgufTensorInfo> tensors, long dataStart)
    {
        FilePath = path;
        _stream = stream;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        _tensors = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        DataStart = dataStart;
    }

    public string FilePath { get; }
    public uint Version { get; }
    /// <summary>The metadata in file order.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    /// <summary>The tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    public long DataStart { get; }
    public bool Contains(string name) => _tensors.ContainsKey(name);
    public GgufTensorInfo Tensor(string name) => _tensors.TryGetValue(name, out var t) ? t
        : throw LoraShellException.NotFound("TensorNotFound", $"'{FilePath}' has no tensor named '{name}'.", name);

    /// <summary>True when the file starts with the GGUF magic (any extension).</summary>
    public static bool HasMagic(string path)
    {
        try
        {
            using var s = File.OpenRead(path);
            Span<byte> b = stackalloc byte[4];
            return s.Read(b) == 4 && BitConverter.ToUInt32(b) == Magic;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    public static GgufFile Open(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("GgufFileNotFound", $"GGUF file '{full}' does not exist.", full);
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try { return Read(full, stream); }
        catch { stream.Dispose(); throw; }
    }

    static LoraShellException Bad(string file, string problem)
        => LoraShellException.InvalidData("InvalidGguf", $"'{file}' is not a valid GGUF file: {problem}.", file);

    static GgufFile Read(string file, FileStream stream)
    {
        var r = new HeaderReader(file, stream);
        if (stream.Length < 24) throw Bad(file, $"it is {stream.Length} bytes, shorter than the 24-byte header");
        uint magic = r.U32();
        if (magic != Magic) throw Bad(file, $"it does not start with the GGUF magic (found 0x{magic:X8})");
        uint version = r.U32();
        if (version is 1) throw Bad(file, "it is GGUF version 1 (2023), which llama.cpp itself no longer reads; convert it again with a current llama.cpp");
        if (version is not (2 or 3))
        {
            bool bigEndian = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(version) is 2 or 3;
            throw Bad(file, bigEndian ? "it is a big-endian GGUF; only little-endian files are supported" : $"version {version} is not one LoraShell reads (2 and 3)");
        }
        long tensorCount = r.Count("tensor count", minBytesEach: 8 + 4 + 8 + 4 + 8);
        long kvCount = r.Count("metadata count", minBytesEach: 8 + 4 + 1);

        var metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        for (long i = 0; i < kvCount; i++)
        {
            string key = r.String("metadata key", MaxKeyBytes);
            var type = (GgufValueType)r.U32();
            var value = r.Value(type, key);
            if (!metadata.TryAdd(key, value)) throw Bad(file, $"metadata key '{key}' appears twice");
        }

        int alignment = DefaultAlignment;
        if (metadata.TryGetValue(AlignmentKey, out var a))
        {
            long al = a.AsInteger ?? 0;
            if (al <= 0 || al > 1 << 20 || (al & (al - 1)) != 0) throw Bad(file, $"{AlignmentKey} is {a}, not a power of two up to 2^20");
            alignment = (int)al;
        }

        var tensors = new List<GgufTensorInfo>((int)Math.Min(tensorCount, 1 << 16));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < tensorCount; i++)
        {
            string name = r.String("tensor name", MaxKeyBytes);
            if (!names.Add(name)) throw Bad(file, $"tensor '{name}' appears twice");
            uint nDims = r.U32();
            if (nDims is 0 or > MaxDims) throw Bad(file, $"tensor '{name}' has {nDims} dimensions (1 to {MaxDims} allowed)");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong n = r.U64();
                if (n == 0 || n > 1L << 40) throw Bad(file, $"tensor '{name}' has dimension {d} of {n}");
                dims[d] = (long)n;
                if ((double)elements * dims[d] > 1L << 42) throw Bad(file, $"tensor '{name}' has more than 2^42 elements ({string.Join(" x ", dims.Take(d + 1))}...)");
                elements *= dims[d];
            }
            uint typeNumber = r.U32();
            var type = (GgmlType)typeNumber;
            if (!GgmlTypes.IsKnown(type)) throw Bad(file, $"tensor '{name}' has tensor type {typeNumber}, which is not a ggml type");
            if (dims[0] % GgmlTypes.BlockElements(type) != 0)
                throw Bad(file, $"tensor '{name}' is {GgmlTypes.Name(type)} with rows of {dims[0]} elements, not a multiple of the type's block of {GgmlTypes.BlockElements(type)}");
            ulong offset = r.U64();
            if (offset % (ulong)alignment != 0) throw Bad(file, $"tensor '{name}' starts at data offset {offset}, not a multiple of the alignment {alignment}");
            if (offset > (ulong)stream.Length) throw Bad(file, $"tensor '{name}' starts at data offset {offset}, past the end of the {stream.Length}-byte file");
            tensors.Add(new GgufTensorInfo(name, dims, type, (long)offset));
        }

        long dataStart = (r.Position + alignment - 1) / alignment * alignment;
        long dataBytes = stream.Length - dataStart;
        var byOffset = tensors.OrderBy(t => t.Offset).ToList();
        for (int i = 0; i < byOffset.Count; i++)
        {
            var t = byOffset[i];
            long end = t.Offset + t.ByteLength;
            if (end > dataBytes)
                throw Bad(file, $"tensor '{t.Name}' ({GgmlTypes.Name(t.Type)} {t.ShapeText}) needs bytes {t.Offset}..{end} of the data section, but it holds {Math.Max(0, dataBytes)} (the file is truncated)");
            if (i + 1 < byOffset.Count && end > byOffset[i + 1].Offset)
                throw Bad(file, $"tensors '{t.Name}' and '{byOffset[i + 1].Name}' overlap (bytes {t.Offset}..{end} and from {byOffset[i + 1].Offset})");
        }
        return new GgufFile(file, stream, version, metadata, tensors, dataStart);
    }

    /// <summary>The raw bytes of a tensor (its ggml type's blocks).</summary>
    public byte[] ReadBytes(GgufTensorInfo t)
    {
        if (t.ByteLength > Array.MaxLength) throw LoraShellException.InvalidData("TensorTooLarge", $"Tensor '{t.Name}' in '{FilePath}' is {t.ByteLength:N0} bytes, more than one read can hold.", t.Name);
        var bytes = GC.AllocateUninitializedArray<byte>((int)t.ByteLength);
        int read;
        lock (_stream) read = RandomAccess.Read(_stream.SafeFileHandle, bytes, DataStart + t.Offset);
        if (read != bytes.Length) throw LoraShellException.InvalidData("InvalidGguf", $"'{FilePath}' ended while reading tensor '{t.Name}'.", FilePath);
        return bytes;
    }

    /// <summary>
    /// Rows [<paramref name="firstRow"/>, + <paramref name="rowCount"/>) of a tensor (a row is
    /// <c>Dims[0]</c> elements) as float32, dequantized into <paramref name="destination"/> a few MiB of
    /// file bytes at a time, whatever the tensor's size.
    /// </summary>
    public void ReadFloats(GgufTensorInfo t, long firstRow, long rowCount, Span<float> destination)
    {
        if (!GgmlTypes.CanRead(t.Type))
            throw LoraShellException.InvalidData("UnsupportedGgufTensorType",
                $"Tensor '{t.Name}' in '{FilePath}' is {GgmlTypes.Name(t.Type)}, a type LoraShell cannot read; it reads {string.Join(", ", Enum.GetValues<GgmlType>().Where(GgmlTypes.CanRead).Select(GgmlTypes.Name))}.", t.Name);
        long rowLength = t.Dims[0], rows = t.ElementCount / rowLength;
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > rows || destination.Length != rowCount * rowLength)
            throw new ArgumentException($"rows {firstRow}..{firstRow + rowCount} into {destination.Length} floats: tensor '{t.Name}' has {rows} rows of {rowLength}");
        long rowBytes = GgmlTypes.RowBytes(t.Type, rowLength);
        long rowsPerChunk = Math.Max(1, (16L << 20) / rowBytes);
        var buffer = new byte[Math.Min(rowCount, rowsPerChunk) * rowBytes];
        for (long done = 0; done < rowCount; done += rowsPerChunk)
        {
            long n = Math.Min(rowsPerChunk, rowCount - done);
            var span = buffer.AsSpan(0, (int)(n * rowBytes));
            int read;
            lock (_stream) read = RandomAccess.Read(_stream.SafeFileHandle, span, DataStart + t.Offset + (firstRow + done) * rowBytes);
            if (read != span.Length) throw LoraShellException.InvalidData("InvalidGguf", $"'{FilePath}' ended while reading tensor '{t.Name}'.", FilePath);
            GgmlTypes.Dequantize(t.Type, span, destination.Slice((int)(done * rowLength), (int)(n * rowLength)));
        }
    }

    /// <summary>A whole tensor as float32 (a vector or small matrix: rope factors, a test's look).</summary>
    public void ReadFloats(GgufTensorInfo t, Span<float> destination) => ReadFloats(t, 0, t.ElementCount / t.Dims[0], destination);

    public void Dispose() => _stream.Dispose();

    /// <summary>Reads the header's little-endian values, checking each length against what the file has left.</summary>
    sealed class HeaderReader
    {
        readonly string _file;
        readonly BinaryReader _reader;
        readonly long _length;

        public HeaderReader(string file, FileStream stream)
        {
            _file = file;
            _reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
            _length = stream.Length;
        }

        public long Position => _reader.BaseStream.Position;
        long Left => _length - Position;

        void Need(long bytes, string what)
        {
            if (bytes > Left) throw Bad(_file, $"the header is cut off in {what} at byte {Position} (needs {bytes} more bytes, {Left} left)");
        }

        public uint U32() { Need(4, "a 4-byte value"); return _reader.ReadUInt32(); }
        public ulong U64() { Need(8, "an 8-byte value"); return _reader.ReadUInt64(); }

        /// <summary>A count of items that each take at least <paramref name="minBytesEach"/> bytes: bounded by the bytes left.</summary>
        public long Count(string what, long minBytesEach)
        {
            ulong n = U64();
            if (n > (ulong)(Left / minBytesEach))
                throw Bad(_file, $"its {what} is {n}, but the {Left} bytes left could hold at most {Left / minBytesEach}");
            return (long)n;
        }

        public string String(string what, long maxBytes)
        {
            ulong n = U64();
            if (n > (ulong)Left) throw Bad(_file, $"a {what} claims {n} bytes at byte {Position}, but only {Left} are left");
            if (n > (ulong)maxBytes) throw Bad(_file, $"a {what} is {n} bytes long (at most {maxBytes})");
            var bytes = _reader.ReadBytes((int)n);
            return Encoding.UTF8.GetString(bytes);
        }

        public GgufValue Value(GgufValueType type, string key)
        {
            switch (type)
            {
                case GgufValueType.Array:
                    var element = (GgufValueType)U32();
                    if (element == GgufValueType.Array) throw Bad(_file, $"metadata '{key}' is an array of arrays");
                    if (!Enum.IsDefined(element)) throw Bad(_file, $"metadata '{key}' is an array of unknown type {(uint)element}");
                    long count = Count($"array length of '{key}'", Math.Max(1, ElementBytes(element)));
                    return new GgufValue(type, ReadArray(element, count, key), element);
                case GgufValueType.String:
                    return new GgufValue(type, String($"string value of '{key}'", int.MaxValue));
                default:
                    if (!Enum.IsDefined(type)) throw Bad(_file, $"metadata '{key}' has unknown value type {(uint)type}");
                    Need(ElementBytes(type), $"the value of '{key}'");
                    return new GgufValue(type, Scalar(type));
            }
        }

        static int ElementBytes(GgufValueType t) => t switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.String => 8, // at least its length
            _ => 8,
        };

        object Scalar(GgufValueType t) => t switch
        {
            GgufValueType.UInt8 => _reader.ReadByte(),
            GgufValueType.Int8 => _reader.ReadSByte(),
            GgufValueType.UInt16 => _reader.ReadUInt16(),
            GgufValueType.Int16 => _reader.ReadInt16(),
            GgufValueType.UInt32 => _reader.ReadUInt32(),
            GgufValueType.Int32 => _reader.ReadInt32(),
            GgufValueType.Float32 => _reader.ReadSingle(),
            GgufValueType.Bool => _reader.ReadByte() != 0,
            GgufValueType.UInt64 => _reader.ReadUInt64(),
            GgufValueType.Int64 => _reader.ReadInt64(),
            GgufValueType.Float64 => _reader.ReadDouble(),
            _ => throw Bad(_file, $"value type {t} is not a scalar"),
        };

        System.Array ReadArray(GgufValueType element, long count, string key)
        {
            int n = (int)count;
            switch (element)
            {
                case GgufValueType.String:
                    var strings = new string[n];
                    for (int i = 0; i < n; i++) strings[i] = String($"element {i} of '{key}'", int.MaxValue);
                    return strings;
                case GgufValueType.Float32: { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = _reader.ReadSingle(); return a; }
                case GgufValueType.Int32: { var a = new int[n]; for (int i = 0; i < n; i++) a[i] = _reader.ReadInt32(); return a; }
                case GgufValueType.UInt32: { var a = new uint[n]; for (int i = 0; i < n; i++) a[i] = _reader.ReadUInt32(); return a; }
                default:
                    var values = new object[n];
                    for (int i = 0; i < n; i++) values[i] = Scalar(element);
                    return values;
            }
        }
    }
}
