using System.Globalization;
using System.Text;

namespace LoraShell.Core.Tokenizers;

/// <summary>
/// The llama2.c tokenizer file (<c>tok*.bin</c>): int32 max token length, then per token a float32
/// merge score, an int32 byte length and the bytes. Encoding follows llama2.c's <c>encode</c>: a
/// dummy-prefix space, one token per UTF-8 character or its byte-fallback tokens (<c>&lt;0xNN&gt;</c>,
/// ids 3..258), then repeatedly merging the adjacent pair whose merged piece scores highest.
/// </summary>
public sealed class Llama2cTokenizer : ITextTokenizer
{
    const int ByteFallbackOffset = 3;
    readonly byte[][] _pieces;
    readonly float[] _scores;
    readonly Dictionary<string, int> _idOf;

    Llama2cTokenizer(string source, byte[][] pieces, float[] scores)
    {
        Source = source;
        _pieces = pieces;
        _scores = scores;
        _idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < pieces.Length; i++)
            _idOf.TryAdd(Latin1(pieces[i]), i);
    }

    public string Source { get; }
    public int VocabSize => _pieces.Length;
    public int BosId => 1;
    public int EosId => 2;

    // Pieces are byte strings (merges may split UTF-8 characters); keying by Latin-1 keeps every
    // byte sequence distinct and cheap to concatenate.
    static string Latin1(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    public static Llama2cTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("TokenizerNotFound", $"Tokenizer file '{full}' does not exist.", full);
        LoraShellException Bad(string problem) => LoraShellException.InvalidData("InvalidTokenizer", $"'{full}' is not a valid llama2.c tokenizer: {problem}.", full);

        byte[] data = File.ReadAllBytes(full);
        if (data.Length < 4) throw Bad("shorter than its 4-byte header");
        int maxLength = BitConverter.ToInt32(data, 0);
        if (maxLength <= 0 || maxLength > 1 << 16) throw Bad($"max token length {maxLength} is implausible");
        var pieces = new List<byte[]>();
        var scores = new List<float>();
        int at = 4;
        while (at < data.Length)
        {
            if (at + 8 > data.Length) throw Bad($"token {pieces.Count} is cut off at byte {at}");
            float score = BitConverter.ToSingle(data, at);
            int length = BitConverter.ToInt32(data, at + 4);
            at += 8;
            if (length < 0 || length > maxLength || at + length > data.Length)
                throw Bad($"token {pieces.Count} has length {length} (max {maxLength}, {data.Length - at} bytes left)");
            pieces.Add(data.AsSpan(at, length).ToArray());
            scores.Add(score);
            at += length;
        }
        if (pieces.Count < ByteFallbackOffset + 256) throw Bad($"it has {pieces.Count} tokens, fewer than the 3 specials + 256 byte tokens it needs");
        return new Llama2cTokenizer(full, pieces.ToArray(), scores.ToArray());
    }

    public IReadOnlyList<int> Encode(string text)
    {
        var ids = new List<int>();
        if (text.Length == 0) return ids;
        if (_idOf.TryGetValue(" ", out int space)) ids.Add(space);

        // One token per UTF-8 character when the vocabulary has it, else its bytes.
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in text.EnumerateRunes())
        {
            int n = rune.EncodeToUtf8(utf8);
            if (_idOf.TryGetValue(Latin1(utf8[..n]), out int id)) ids.Add(id);
            else for (int i = 0; i < n; i++) ids.Add(utf8[i] + ByteFallbackOffset);
        }

        // Greedy merges: the adjacent pair whose merged piece has the highest score, first on ties.
        while (true)
        {
            float best = float.NegativeInfinity;
            int bestAt = -1, bestId = -1;
            for (int i = 0; i + 1 < ids.Count; i++)
            {
                string merged = Latin1(_pieces[ids[i]]) + Latin1(_pieces[ids[i + 1]]);
                if (_idOf.TryGetValue(merged, out int id) && _scores[id] > best)
                {
                    best = _scores[id]; bestAt = i; bestId = id;
                }
            }
            if (bestAt < 0) break;
            ids[bestAt] = bestId;
            ids.RemoveAt(bestAt + 1);
        }
        return ids;
    }

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        int previous = BosId;
        foreach (int id in ids)
        {
            if (id < 0 || id >= _pieces.Length)
                throw LoraShellException.InvalidArgument("TokenOutOfRange", $"Token id {id} is outside the tokenizer's vocabulary (0..{_pieces.Length - 1}).", id);
            byte[] piece = _pieces[id];
            if (TryByteToken(piece, out byte raw)) bytes.Add(raw);
            else
            {
                int skip = previous == BosId && piece.Length > 0 && piece[0] == (byte)' ' ? 1 : 0;
                bytes.AddRange(piece.AsSpan(skip).ToArray());
            }
            previous = id;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Pieces of the form <c>&lt;0xNN&gt;</c> stand for the raw byte NN.</summary>
    static bool TryByteToken(byte[] piece, out byte value)
    {
        value = 0;
        if (piece.Length != 6 || piece[0] != '<' || piece[1] != '0' || piece[2] != 'x' || piece[5] != '>') return false;
        return byte.TryParse(Encoding.ASCII.GetString(piece, 3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }
}
