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
    public IReadOnlyList<string> Files => new[] { Source };
    public int VocabSize => _pieces.Length;
    internal byte[] Piece(int id) => _pieces[id];
    internal float Score(int id) => _scores[id];
    public int? BosId => Bos;
    public int? EosId => Eos;
    const int Unknown = 0, Bos = 1, Eos = 2;
    /// <summary>llama2.c stories separate documents with BOS, so generation stops at BOS as well as EOS.</summary>
    public IReadOnlyCollection<int> StopIds { get; } = new[] { Bos, Eos };
    public ChatFormat? Chat => null;

    /// <summary>llama2.c's sequence: BOS, then the text.</summary>
    public IReadOnlyList<int> EncodeWithSpecialTokens(string text) => new[] { Bos }.Concat(Encode(text)).ToList();

    /// <summary>
    /// Tokens with their spans: the pieces' bytes are the UTF-8 of " " + text (the dummy prefix), so each
    /// token's byte range maps back to characters of the text.
    /// </summary>
    public IReadOnlyList<TokenSpan> Tokenize(string text, bool addSpecialTokens)
    {
        var result = new List<TokenSpan>();
        if (addSpecialTokens) result.Add(new TokenSpan(Bos, Latin1(_pieces[Bos]), 0, 0, true));
        var utf8 = Encoding.UTF8.GetBytes(text);
        // charAt[b]: the UTF-16 index of the character that byte b of the text belongs to.
        var charAt = new int[utf8.Length + 1];
        for (int c = 0, b = 0; c < text.Length; c++)
        {
            bool pair = HuggingFace.Text.UnicodeProps.CharLength(text, c) == 2;
            int n = pair ? 4 : Encoding.UTF8.GetByteCount(text.AsSpan(c, 1));
            for (int k = 0; k < n; k++) charAt[b++] = c;
            if (pair) c++;
        }
        charAt[utf8.Length] = text.Length;
        int at = -1; // byte position in the text; the dummy-prefix space is byte -1
        foreach (int id in Encode(text))
        {
            int length = TryByteToken(_pieces[id], out _) ? 1 : _pieces[id].Length;
            int first = Math.Clamp(at, 0, utf8.Length), last = Math.Clamp(at + length, 0, utf8.Length);
            int start = charAt[first], end = charAt[last];
            // A token that is only part of a character (byte fallback) covers the whole character.
            if (end <= start && last > first) end = start + HuggingFace.Text.UnicodeProps.CharLength(text, start);
            result.Add(new TokenSpan(id, Latin1(_pieces[id]), start, end, false));
            at += length;
        }
        return result;
    }

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
            if (!float.IsFinite(score)) throw Bad($"token {pieces.Count} has merge score {score}; scores must be finite numbers");
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

        return Merge(ids);
    }

    /// <summary>
    /// llama2.c's greedy rule — merge the adjacent pair whose merged piece has the highest score,
    /// the leftmost one on ties, until none merges — done with a priority queue over a linked list,
    /// so long texts cost O(n log n) instead of llama2.c's O(n²) rescans. Same result: the queue pops
    /// the highest score first and, on ties, the smallest original position, which is the leftmost.
    /// </summary>
    List<int> Merge(List<int> initial)
    {
        int n = initial.Count;
        var id = initial.ToArray();
        var next = new int[n];
        var prev = new int[n];
        var version = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
        var alive = Enumerable.Repeat(true, n).ToArray();
        var queue = new PriorityQueue<(int Left, int Right, int VersionLeft, int VersionRight, int Merged), (float, int)>();

        void Offer(int left)
        {
            if (left < 0) return;
            int right = next[left];
            if (right < 0) return;
            int merged = MergedId(id[left], id[right]);
            if (merged >= 0) queue.Enqueue((left, right, version[left], version[right], merged), (-_scores[merged], left));
        }

        for (int i = 0; i + 1 < n; i++) Offer(i);
        while (queue.TryDequeue(out var m, out _))
        {
            if (!alive[m.Left] || !alive[m.Right] || next[m.Left] != m.Right
                || version[m.Left] != m.VersionLeft || version[m.Right] != m.VersionRight) continue;
            id[m.Left] = m.Merged;
            version[m.Left]++;
            alive[m.Right] = false;
            next[m.Left] = next[m.Right];
            if (next[m.Right] >= 0) prev[next[m.Right]] = m.Left;
            Offer(prev[m.Left]);
            Offer(m.Left);
        }

        var result = new List<int>();
        for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) result.Add(id[i]);
        return result;
    }

    readonly Dictionary<(int, int), int> _mergeCache = new();

    int MergedId(int a, int b)
    {
        lock (_mergeCache)
        {
            if (_mergeCache.TryGetValue((a, b), out int cached)) return cached;
            int merged = _idOf.TryGetValue(Latin1(_pieces[a]) + Latin1(_pieces[b]), out int id) ? id : -1;
            _mergeCache[(a, b)] = merged;
            return merged;
        }
    }

    /// <summary>Decodes as llama2.c does: a leading space after BOS is dropped; byte tokens become their bytes.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        int previous = Bos;
        foreach (int id in ids)
        {
            if (id < 0 || id >= _pieces.Length)
                throw LoraShellException.InvalidArgument("TokenOutOfRange", $"Token id {id} is outside the tokenizer's vocabulary (0..{_pieces.Length - 1}).", id);
            if (skipSpecialTokens && id is Unknown or Bos or Eos) { previous = id; continue; }
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
