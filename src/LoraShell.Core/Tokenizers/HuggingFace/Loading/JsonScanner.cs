using System.Runtime.CompilerServices;
using System.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Loading;

/// <summary>
/// A minimal forward JSON scanner over UTF-8 bytes, used for the big parts of tokenizer.json (vocab, merges) and to
/// find the extent of the other values, which are then parsed and validated by <see cref="System.Text.Json.JsonDocument"/>.
///
/// Why not <see cref="System.Text.Json.Utf8JsonReader"/> for everything: in a fresh process its code runs as
/// ReadyToRun/tier-0 code until the tiered JIT catches up, which made the first load of an 11 MB file take ~0.5 s
/// longer than later ones. These loops are compiled fully optimized on first use
/// (<see cref="MethodImplOptions.AggressiveOptimization"/>).
/// </summary>
internal sealed class JsonScanner
{
    private static readonly UTF8Encoding s_strictUtf8 = new(false, true);
    private readonly byte[] _data;
    private readonly string _file;
    private char[] _buffer = new char[256];

    public JsonScanner(byte[] data, string file)
    {
        _data = data;
        _file = file;
        // Skip a UTF-8 byte order mark.
        if (data.Length >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) Position = 3;
    }

    public int Position { get; set; }

    public byte[] Data => _data;

    public string File => _file;

    public TokenizerFormatException Error(string message, string? jsonPath = null)
    {
        int line = 1, column = 1;
        for (int i = 0; i < Math.Min(Position, _data.Length); i++)
        {
            if (_data[i] == '\n') { line++; column = 1; }
            else column++;
        }
        return new TokenizerFormatException($"Malformed JSON: {message}", null, $"{_file} (line {line}, column {column}){(jsonPath is null ? "" : $", {jsonPath}")}");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SkipWhitespace()
    {
        var d = _data;
        int p = Position;
        while (p < d.Length && (d[p] == ' ' || d[p] == '\n' || d[p] == '\r' || d[p] == '\t')) p++;
        Position = p;
    }

    /// <summary>The next non-whitespace byte, not consumed; 0 at the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public byte Peek()
    {
        SkipWhitespace();
        return Position < _data.Length ? _data[Position] : (byte)0;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Expect(byte b, string? jsonPath = null)
    {
        if (Peek() != b) throw Error($"expected '{(char)b}'", jsonPath);
        Position++;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryConsume(byte b)
    {
        if (Peek() != b) return false;
        Position++;
        return true;
    }

    public bool TryConsumeLiteral(string literal)
    {
        SkipWhitespace();
        if (Position + literal.Length > _data.Length) return false;
        for (int i = 0; i < literal.Length; i++)
        {
            if (_data[Position + i] != literal[i]) return false;
        }
        int end = Position + literal.Length;
        if (end < _data.Length && char.IsAsciiLetterOrDigit((char)_data[end])) return false;
        Position = end;
        return true;
    }

    /// <summary>Reads a JSON string into the internal buffer and returns it as a span (valid until the next read).</summary>
    public ReadOnlySpan<char> ReadString(string? jsonPath = null)
    {
        int length = ReadStringInto(ref _buffer, jsonPath); // may replace _buffer: slice afterwards
        return _buffer.AsSpan(0, length);
    }

    /// <summary>Reads a JSON string into <paramref name="buffer"/> (grown as needed) and returns its length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int ReadStringInto(ref char[] buffer, string? jsonPath = null)
    {
        if (Peek() != '"') throw Error("expected a string", jsonPath);
        int p = Position + 1;
        var d = _data.AsSpan();
        int length = 0;
        while (true)
        {
            int rel = d[p..].IndexOfAny((byte)'"', (byte)'\\');
            if (rel < 0) throw Error("unterminated string", jsonPath);
            var segment = d.Slice(p, rel);
            if (segment.IndexOfAnyInRange((byte)0, (byte)0x1F) >= 0) throw Error("control character in a string", jsonPath);
            if (!segment.IsEmpty)
            {
                Ensure(ref buffer, length + segment.Length);
                try
                {
                    length += s_strictUtf8.GetChars(segment, buffer.AsSpan(length));
                }
                catch (DecoderFallbackException)
                {
                    throw Error("invalid UTF-8 in a string", jsonPath);
                }
            }
            p += rel;
            if (d[p] == '"')
            {
                Position = p + 1;
                return length;
            }
            // Escape sequence.
            if (p + 1 >= d.Length) throw Error("unterminated escape", jsonPath);
            Ensure(ref buffer, length + 2);
            byte e = d[p + 1];
            p += 2;
            switch (e)
            {
                case (byte)'"': buffer[length++] = '"'; break;
                case (byte)'\\': buffer[length++] = '\\'; break;
                case (byte)'/': buffer[length++] = '/'; break;
                case (byte)'b': buffer[length++] = '\b'; break;
                case (byte)'f': buffer[length++] = '\f'; break;
                case (byte)'n': buffer[length++] = '\n'; break;
                case (byte)'r': buffer[length++] = '\r'; break;
                case (byte)'t': buffer[length++] = '\t'; break;
                case (byte)'u':
                    if (p + 4 > d.Length || !TryHex4(d.Slice(p, 4), out int code)) throw Error("bad \\u escape", jsonPath);
                    buffer[length++] = (char)code;
                    p += 4;
                    break;
                default:
                    throw Error("bad escape", jsonPath);
            }
        }
    }

    /// <summary>Skips a JSON string (validated later, when it is read) and returns the position of its opening quote.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int SkipString(string? jsonPath = null)
    {
        if (Peek() != '"') throw Error("expected a string", jsonPath);
        int start = Position;
        var d = _data.AsSpan();
        int p = start + 1;
        while (true)
        {
            int rel = d[p..].IndexOfAny((byte)'"', (byte)'\\');
            if (rel < 0) throw Error("unterminated string", jsonPath);
            p += rel;
            if (d[p] == '\\')
            {
                p += 2;
                continue;
            }
            Position = p + 1;
            return start;
        }
    }

    private static bool TryHex4(ReadOnlySpan<byte> hex, out int value)
    {
        value = 0;
        foreach (byte b in hex)
        {
            int v = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : b >= 'A' && b <= 'F' ? b - 'A' + 10 : -1;
            if (v < 0) return false;
            value = value * 16 + v;
        }
        return true;
    }

    private static void Ensure(ref char[] buffer, int length)
    {
        if (buffer.Length < length) Array.Resize(ref buffer, Math.Max(length, buffer.Length * 2));
    }

    /// <summary>A non-negative integer that fits in an int (token ids).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int ReadNonNegativeInt(string? jsonPath = null)
    {
        SkipWhitespace();
        var d = _data;
        int p = Position;
        long value = 0;
        int start = p;
        while (p < d.Length && d[p] >= '0' && d[p] <= '9')
        {
            value = value * 10 + (d[p] - '0');
            if (value > int.MaxValue) throw Error("integer out of range", jsonPath);
            p++;
        }
        if (p == start || (p < d.Length && (d[p] == '.' || d[p] == 'e' || d[p] == 'E'))) throw Error("expected a non-negative integer", jsonPath);
        if (d[start] == '0' && p - start > 1) throw Error("leading zero in a number", jsonPath);
        Position = p;
        return (int)value;
    }

    /// <summary>Skips one value (any type) and returns its byte range; strings and nesting are honoured.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public (int Start, int End) SkipValue(string? jsonPath = null)
    {
        SkipWhitespace();
        int start = Position;
        var d = _data.AsSpan();
        int p = start;
        int depth = 0;
        if (p >= d.Length) throw Error("expected a value", jsonPath);
        do
        {
            if (p >= d.Length) throw Error("unterminated value", jsonPath);
            byte b = d[p];
            switch (b)
            {
                case (byte)'"':
                {
                    p++;
                    while (true)
                    {
                        int rel = d[p..].IndexOfAny((byte)'"', (byte)'\\');
                        if (rel < 0) throw Error("unterminated string", jsonPath);
                        p += rel;
                        if (d[p] == '\\') { p += 2; continue; }
                        p++;
                        break;
                    }
                    break;
                }
                case (byte)'{':
                case (byte)'[':
                    depth++;
                    p++;
                    break;
                case (byte)'}':
                case (byte)']':
                    depth--;
                    p++;
                    break;
                default:
                    if (depth == 0)
                    {
                        // A primitive: up to the next structural character or whitespace.
                        while (p < d.Length && d[p] != ',' && d[p] != '}' && d[p] != ']' && d[p] != ' ' && d[p] != '\n' && d[p] != '\r' && d[p] != '\t') p++;
                    }
                    else p++;
                    break;
            }
        }
        while (depth > 0);
        if (depth < 0) throw Error("unbalanced brackets", jsonPath);
        Position = p;
        return (start, p);
    }
}
