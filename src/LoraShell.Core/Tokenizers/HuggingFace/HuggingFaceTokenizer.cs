using LoraShell.Core.Tokenizers.HuggingFace.Decoders;
using LoraShell.Core.Tokenizers.HuggingFace.Loading;
using LoraShell.Core.Tokenizers.HuggingFace.Models;
using LoraShell.Core.Tokenizers.HuggingFace.Normalizers;
using LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;
using LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> tokenizer that produces exactly what the Rust <c>tokenizers</c> crate (0.22)
/// produces: the same ids, token strings, offsets (as UTF-16 indices) and decoded text. The pipeline is the crate's:
/// added tokens are cut out of the text, the rest is normalized, pre-tokenized and run through BPE, then the
/// post-processor adds its special tokens. Instances are immutable and thread-safe.
/// </summary>
public sealed class HuggingFaceTokenizer
{
    private readonly INormalizer? _normalizer;
    private readonly IPreTokenizer? _preTokenizer;
    private readonly BpeModel _model;
    private readonly IPostProcessor? _postProcessor;
    private readonly IDecoder? _decoder;
    private readonly AddedVocabulary _added;

    private HuggingFaceTokenizer(string source, INormalizer? normalizer, IPreTokenizer? preTokenizer, BpeModel model,
        IPostProcessor? postProcessor, IDecoder? decoder, AddedVocabulary added)
    {
        Source = source;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _postProcessor = postProcessor;
        _decoder = decoder;
        _added = added;
        VocabSize = Math.Max(model.MaxId, added.MaxId) + 1;
    }

    /// <summary>The file this tokenizer was loaded from.</summary>
    public string Source { get; }

    /// <summary>Largest id (model vocab or added token) plus one.</summary>
    public int VocabSize { get; }

    /// <summary>The added tokens, by id, with the ids the tokenizer actually uses.</summary>
    public IReadOnlyList<AddedToken> AddedTokens => _added.Tokens;

    /// <summary>
    /// Loads a tokenizer.json. Throws <see cref="TokenizerFormatException"/> when the file is malformed or uses a
    /// component or option that is not supported (the message names it and lists what is supported).
    /// </summary>
    public static HuggingFaceTokenizer Load(string tokenizerJsonPath)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJsonPath);
        return Build(TokenizerJsonReader.Read(tokenizerJsonPath), Path.GetFullPath(tokenizerJsonPath));
    }

    /// <summary>A tokenizer from tokenizer.json content held in memory (e.g. rebuilt from a GGUF file's vocabulary); <paramref name="source"/> names it in messages.</summary>
    public static HuggingFaceTokenizer Parse(byte[] tokenizerJson, string source)
        => Build(TokenizerJsonReader.Parse(tokenizerJson, source), source);

    static HuggingFaceTokenizer Build(TokenizerJsonContent content, string source)
    {
        var normalizer = content.Normalizer is { } n ? ComponentFactory.BuildNormalizer(n) : null;
        var preTokenizer = content.PreTokenizer is { } p ? ComponentFactory.BuildPreTokenizer(p) : null;
        var postProcessor = content.PostProcessor is { } pp ? ComponentFactory.BuildPostProcessor(pp) : null;
        var decoder = content.Decoder is { } d ? ComponentFactory.BuildDecoder(d) : null;
        var added = new AddedVocabulary(content.AddedTokens, content.Model, normalizer);
        return new HuggingFaceTokenizer(source, normalizer, preTokenizer, content.Model, postProcessor, decoder, added);
    }

    /// <summary>Encodes <paramref name="text"/> like the crate's <c>encode(text, add_special_tokens)</c> (no truncation, no padding).</summary>
    public TokenEncoding Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        return EncodeCore(text, addSpecialTokens, withDetails: true).ToEncoding();
    }

    /// <summary>Only the ids of <see cref="Encode"/>; skips building token strings and offsets.</summary>
    public int[] EncodeIds(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        return EncodeCore(text, addSpecialTokens, withDetails: false).Ids.ToArray();
    }

    /// <summary>
    /// Decodes ids like the crate's <c>decode(ids, skip_special_tokens)</c> (no transformers clean-up). Unknown ids are
    /// ignored; with <paramref name="skipSpecialTokens"/> the added tokens marked special are left out.
    /// </summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>(ids.Count);
        foreach (int id in ids)
        {
            string? token = _added.ById(id)?.Content ?? _model.IdToToken(id);
            if (token is null) continue;
            if (skipSpecialTokens && _added.IsSpecial(token)) continue;
            tokens.Add(token);
        }
        if (_decoder is null) return string.Join(" ", tokens);
        return string.Concat(_decoder.DecodeChain(tokens));
    }

    public string? IdToToken(int id) => _added.ById(id)?.Content ?? _model.IdToToken(id);

    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _added.IdOf(token) ?? _model.TokenToId(token);
    }

    private EncodingBuilder EncodeCore(string text, bool addSpecialTokens, bool withDetails)
    {
        var splits = new PreTokenizedString(text);
        _added.ExtractAndNormalize(_normalizer, splits);

        var encoding = new EncodingBuilder(text, withDetails);
        Action<NormalizedString> tokenize = piece =>
        {
            if (piece.IsEmpty) return;
            var word = _model.Tokenize(piece.Normalized);
            if (word is null) return;
            if (withDetails) AddWithOffsets(encoding, piece, word);
            else encoding.Ids.AddRange(word.Ids);
        };
        foreach (var split in splits.Splits)
        {
            var piece = split.Normalized;
            if (split.HasToken)
            {
                var (s, e) = withDetails ? piece.ToOriginal(0, piece.Length) : default;
                encoding.Add(split.TokenId, piece.Normalized, s, e, false);
            }
            else if (_preTokenizer is not null) _preTokenizer.PreTokenize(piece, tokenize);
            else tokenize(piece);
        }
        _postProcessor?.Process(encoding, addSpecialTokens);
        return encoding;
    }

    /// <summary>
    /// Token offsets: the crate sums the tokens' UTF-8 byte lengths inside the pre-token, then maps the byte range
    /// through the alignments. A byte range that starts or ends inside a character covers that whole character.
    /// </summary>
    private void AddWithOffsets(EncodingBuilder encoding, NormalizedString piece, BpeWord word)
    {
        string s = piece.Normalized;
        bool ascii = !s.AsSpan().ContainsAnyExceptInRange('\0', '\u007F');
        int[]? unitStartOfByte = null, unitEndOfByte = null;
        int totalBytes = s.Length;
        if (!ascii)
        {
            totalBytes = 0;
            for (int i = 0; i < s.Length;)
            {
                int cp = UnicodeProps.CodePointAt(s, i, out int len);
                totalBytes += UnicodeProps.Utf8Length(cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp);
                i += len;
            }
            unitStartOfByte = new int[totalBytes];
            unitEndOfByte = new int[totalBytes];
            int b = 0;
            for (int i = 0; i < s.Length;)
            {
                int cp = UnicodeProps.CodePointAt(s, i, out int len);
                int n = UnicodeProps.Utf8Length(cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp);
                for (int k = 0; k < n; k++)
                {
                    unitStartOfByte[b] = i;
                    unitEndOfByte[b] = i + len;
                    b++;
                }
                i += len;
            }
        }
        int cursor = 0;
        for (int t = 0; t < word.Ids.Length; t++)
        {
            int id = word.Ids[t];
            int b0 = cursor, b1 = cursor + word.ByteLengths[t];
            cursor = b1;
            int u0, u1;
            // Only byte fallback with a subword prefix can count more bytes than the piece has (the prefix's bytes);
            // the crate then falls back to raw offsets. Clamp to the piece instead.
            if (b1 > totalBytes) { u0 = b0 >= totalBytes ? s.Length : ascii ? b0 : unitStartOfByte![b0]; u1 = s.Length; }
            else if (ascii) { u0 = b0; u1 = b1; }
            else { u0 = unitStartOfByte![b0]; u1 = unitEndOfByte![b1 - 1]; }
            var (os, oe) = piece.ToOriginal(u0, u1);
            encoding.Add(id, word.SingleToken ?? _model.IdToToken(id), os, oe, false);
        }
    }
}
