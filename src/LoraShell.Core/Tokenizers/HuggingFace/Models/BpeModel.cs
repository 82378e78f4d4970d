using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Models;

/// <summary>Options of the BPE model as they appear in tokenizer.json.</summary>
internal sealed record BpeOptions(
    string? UnkToken,
    string? ContinuingSubwordPrefix,
    string? EndOfWordSuffix,
    bool FuseUnk,
    bool ByteFallback,
    bool IgnoreMerges);

/// <summary>
/// The crate's BPE model (<c>models/bpe/model.rs</c>), dropout off. Results are cached per pre-token, since natural
/// text repeats its words; the cache never changes results.
/// </summary>
internal sealed class BpeModel
{
    private const int MaxCachedLength = 256;
    private const int MaxCacheEntries = 200_000;

    private readonly VocabIndex _vocab;
    private readonly string?[] _idToToken;
    private readonly PairMap _merges;
    private readonly BpeOptions _options;
    private readonly int[]? _singleCharIds;
    private readonly int[] _byteIds = new int[256];
    private readonly int _unkId = -1;
    private readonly ConcurrentDictionary<string, BpeWord> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, BpeWord>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cacheCount;

    [ThreadStatic] private static BpeMerger? t_merger;
    [ThreadStatic] private static char[]? t_chars;

    public BpeModel(VocabIndex vocab, string?[] idToToken, PairMap merges, BpeOptions options)
    {
        _vocab = vocab;
        _merges = merges;
        _options = options;
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();

        _idToToken = idToToken;
        VocabCount = vocab.Count;

        if (string.IsNullOrEmpty(options.ContinuingSubwordPrefix) && string.IsNullOrEmpty(options.EndOfWordSuffix))
        {
            // Without prefix/suffix a single BMP character is looked up by index, not by hashing a string.
            _singleCharIds = new int[0x10000];
            FillSingleCharIds(vocab, _singleCharIds);
        }
        for (int b = 0; b < 256; b++) _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        if (options.UnkToken is { } unk && vocab.TryGetValue(unk, out int unkId)) _unkId = unkId;
    }

    /// <summary>The reverse vocab (the crate's <c>vocab_r</c>); ids missing from the vocab are null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static string?[] BuildIdToToken(VocabIndex vocab)
    {
        int maxId = -1;
        for (int i = 0; i < vocab.Count; i++) maxId = Math.Max(maxId, vocab.IdAt(i));
        var idToToken = new string?[maxId + 1];
        for (int i = 0; i < vocab.Count; i++) idToToken[vocab.IdAt(i)] = vocab.TokenAt(i);
        return idToToken;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FillSingleCharIds(VocabIndex vocab, int[] ids)
    {
        Array.Fill(ids, -1);
        for (int i = 0; i < vocab.Count; i++)
        {
            string token = vocab.TokenAt(i);
            if (token.Length == 1) ids[token[0]] = vocab.IdAt(i);
        }
    }

    /// <summary>Number of entries in the vocab (the crate's <c>get_vocab_size</c>).</summary>
    public int VocabCount { get; }

    public int MaxId => _idToToken.Length - 1;

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(ReadOnlySpan<char> token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>The crate's <c>BPE::tokenize</c> for one pre-token (without offsets: see <see cref="BpeWord"/>).</summary>
    public BpeWord? Tokenize(ReadOnlySpan<char> word)
    {
        if (word.IsEmpty) return null;
        if (_options.IgnoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            return new BpeWord([whole], [Encoding.UTF8.GetByteCount(word)], word.ToString());
        }
        if (_cacheLookup.TryGetValue(word, out var cached)) return cached;
        var result = MergeWord(word);
        // The entry count is tracked separately: ConcurrentDictionary.Count takes every lock.
        if (word.Length < MaxCachedLength && Volatile.Read(ref _cacheCount) < MaxCacheEntries && _cacheLookup.TryAdd(word, result))
        {
            Interlocked.Increment(ref _cacheCount);
        }
        return result;
    }

    /// <summary>The crate's <c>merge_word</c>: characters to ids (with prefix/suffix, byte fallback, unk), then merges.</summary>
    private BpeWord MergeWord(ReadOnlySpan<char> w)
    {
        var merger = t_merger ??= new BpeMerger();
        merger.Reset();
        int unkId = -1, unkLen = 0;
        bool hasUnk = false;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < w.Length;)
        {
            int cp = UnicodeProps.CodePointAt(w, i, out int len);
            bool isFirst = i == 0, isLast = i + len == w.Length;
            int byteLen = ByteLevelPreTokenizer.EncodeUtf8(cp, utf8);
            int id = LookupSymbol(w.Slice(i, len), isFirst, isLast);
            i += len;
            if (id >= 0)
            {
                if (hasUnk)
                {
                    merger.Add(unkId, unkLen);
                    hasUnk = false;
                }
                merger.Add(id, byteLen);
                continue;
            }
            if (_options.ByteFallback && TryAddByteFallback(w.Slice(i - len, len), isFirst, isLast, merger)) continue;
            if (_options.UnkToken is { } unk)
            {
                int unkTokenId = _unkId >= 0
                    ? _unkId
                    : throw new TokenizerFormatException($"The unk_token '{unk}' is not in the vocabulary.", "model.unk_token", "$.model.unk_token");
                if (hasUnk && _options.FuseUnk) unkLen += byteLen;
                else
                {
                    if (hasUnk) merger.Add(unkId, unkLen);
                    unkId = unkTokenId;
                    unkLen = byteLen;
                    hasUnk = true;
                }
            }
        }
        if (hasUnk) merger.Add(unkId, unkLen);
        merger.MergeAll(_merges);
        return merger.ToWord();
    }

    private int LookupSymbol(ReadOnlySpan<char> ch, bool isFirst, bool isLast)
    {
        if (_singleCharIds is { } single)
        {
            if (ch.Length == 1) return single[ch[0]];
            return _vocab.TryGetValue(ch, out int id) ? id : -1;
        }
        var text = Decorate(ch, isFirst, isLast);
        return _vocab.TryGetValue(text, out int id2) ? id2 : -1;
    }

    /// <summary>The symbol string the crate looks up: prefix (unless first) + character + suffix (if last).</summary>
    private ReadOnlySpan<char> Decorate(ReadOnlySpan<char> ch, bool isFirst, bool isLast)
    {
        string prefix = isFirst ? string.Empty : _options.ContinuingSubwordPrefix ?? string.Empty;
        string suffix = isLast ? _options.EndOfWordSuffix ?? string.Empty : string.Empty;
        int n = prefix.Length + ch.Length + suffix.Length;
        var buf = t_chars is { } b && b.Length >= n ? b : (t_chars = new char[Math.Max(64, n)]);
        prefix.CopyTo(buf);
        ch.CopyTo(buf.AsSpan(prefix.Length));
        suffix.CopyTo(buf.AsSpan(prefix.Length + ch.Length));
        return buf.AsSpan(0, n);
    }

    /// <summary>Byte fallback: every UTF-8 byte of the (decorated) symbol as <c>&lt;0xNN&gt;</c>, all or nothing.</summary>
    private bool TryAddByteFallback(ReadOnlySpan<char> ch, bool isFirst, bool isLast, BpeMerger merger)
    {
        var symbol = _singleCharIds is null ? Decorate(ch, isFirst, isLast) : ch;
        Span<byte> bytes = stackalloc byte[4];
        // Check first: the crate adds nothing unless every byte has a token.
        for (int pass = 0; pass < 2; pass++)
        {
            for (int i = 0; i < symbol.Length;)
            {
                int cp = UnicodeProps.CodePointAt(symbol, i, out int len);
                i += len;
                int n = ByteLevelPreTokenizer.EncodeUtf8(cp, bytes);
                for (int k = 0; k < n; k++)
                {
                    int id = _byteIds[bytes[k]];
                    if (id < 0) return false;
                    if (pass == 1) merger.Add(id, 1);
                }
            }
        }
        return true;
    }
}
