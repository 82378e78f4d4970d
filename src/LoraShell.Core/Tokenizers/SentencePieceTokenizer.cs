using Microsoft.ML.Tokenizers;

namespace LoraShell.Core.Tokenizers;

/// <summary>
/// A SentencePiece model file through Microsoft.ML.Tokenizers: Llama's <c>tokenizer.model</c> (BPE; transformers'
/// LlamaTokenizer puts BOS first) or T5's <c>spiece.model</c> (Unigram, with its precompiled normalization;
/// T5Tokenizer ends every text with EOS and has no BOS).
/// </summary>
public sealed class SentencePieceTokenizer : ITextTokenizer
{
    readonly Microsoft.ML.Tokenizers.SentencePieceTokenizer _inner;
    readonly bool _unigram;

    SentencePieceTokenizer(string source, Microsoft.ML.Tokenizers.SentencePieceTokenizer inner, bool unigram)
    {
        Source = source;
        _inner = inner;
        _unigram = unigram;
    }

    public string Source { get; }
    public IReadOnlyList<string> Files => new[] { Source };
    // The highest id + 1, not the entry count: a T5 file's missing BOS is loaded as an alias of EOS (one id, two names).
    public int VocabSize => _inner.Vocabulary.Values.Max() + 1;
    public int? BosId => _inner.BeginningOfSentenceId >= 0 && !_unigram ? _inner.BeginningOfSentenceId : null;
    public int? EosId => _inner.EndOfSentenceId >= 0 ? _inner.EndOfSentenceId : null;
    public IReadOnlyCollection<int> StopIds => new[] { _inner.EndOfSentenceId };
    public ChatFormat? Chat => null;

    public static SentencePieceTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("TokenizerNotFound", $"Tokenizer file '{full}' does not exist.", full);
        if (new FileInfo(full).Length == 0)
            throw LoraShellException.InvalidData("InvalidTokenizer", $"'{full}' is empty; a SentencePiece .model holds the vocabulary (the download may have failed).", full);
        try
        {
            var bytes = File.ReadAllBytes(full);
            var type = SentencePieceModelType.Read(bytes);
            using var stream = new MemoryStream(type == SentencePieceModelType.Unigram ? SentencePieceModelType.WithBosIdForLoading(bytes) : bytes);
            return type == SentencePieceModelType.Unigram
                ? new SentencePieceTokenizer(full, Microsoft.ML.Tokenizers.SentencePieceTokenizer.Create(stream, false, false), unigram: true)
                : new SentencePieceTokenizer(full, LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false), unigram: false);
        }
        catch (Exception e) when (e is not LoraShellException)
        {
            throw LoraShellException.InvalidData("InvalidTokenizer", $"'{full}' is not a SentencePiece model that Microsoft.ML.Tokenizers can read: {e.Message}", full);
        }
    }

    public IReadOnlyList<int> Encode(string text) => _inner.EncodeToIds(text, considerPreTokenization: false, considerNormalization: true);

    /// <summary>As transformers' LlamaTokenizer (add_bos_token true): BOS, then the text; T5Tokenizer: the text, then EOS.</summary>
    public IReadOnlyList<int> EncodeWithSpecialTokens(string text)
        => _unigram ? Encode(text).Append(_inner.EndOfSentenceId).ToList() : new[] { _inner.BeginningOfSentenceId }.Concat(Encode(text)).ToList();

    /// <summary>Tokens with spans: SentencePiece's offsets are in its normalised text, which starts with the dummy-prefix ▁.</summary>
    public IReadOnlyList<TokenSpan> Tokenize(string text, bool addSpecialTokens)
    {
        var result = new List<TokenSpan>();
        if (addSpecialTokens && !_unigram) result.Add(new TokenSpan(_inner.BeginningOfSentenceId, "<s>", 0, 0, true));
        foreach (var t in _inner.EncodeToTokens(text, out _, considerPreTokenization: false, considerNormalization: true))
        {
            var (offset, length) = t.Offset.GetOffsetAndLength(text.Length + 1);
            int start = Math.Clamp(offset - 1, 0, text.Length), end = Math.Clamp(offset + length - 1, start, text.Length);
            result.Add(new TokenSpan(t.Id, t.Value, start, end, false));
        }
        if (addSpecialTokens && _unigram) result.Add(new TokenSpan(_inner.EndOfSentenceId, _inner.EndOfSentenceToken, text.Length, text.Length, true));
        return result;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
        => _inner.Decode(skipSpecialTokens ? ids.Where(id => id != _inner.BeginningOfSentenceId && id != _inner.EndOfSentenceId) : ids);
}
