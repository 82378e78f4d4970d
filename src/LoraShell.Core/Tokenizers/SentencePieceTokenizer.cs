using Microsoft.ML.Tokenizers;

namespace LoraShell.Core.Tokenizers;

/// <summary>A Hugging Face <c>tokenizer.model</c> (SentencePiece) through Microsoft.ML.Tokenizers.</summary>
public sealed class SentencePieceTokenizer : ITextTokenizer
{
    readonly LlamaTokenizer _inner;

    SentencePieceTokenizer(string source, LlamaTokenizer inner)
    {
        Source = source;
        _inner = inner;
    }

    public string Source { get; }
    public IReadOnlyList<string> Files => new[] { Source };
    public int VocabSize => _inner.Vocabulary.Count;
    public int? BosId => _inner.BeginningOfSentenceId;
    public int? EosId => _inner.EndOfSentenceId;
    public IReadOnlyCollection<int> StopIds => new[] { _inner.EndOfSentenceId };
    public ChatFormat? Chat => null;

    public static SentencePieceTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("TokenizerNotFound", $"Tokenizer file '{full}' does not exist.", full);
        if (new FileInfo(full).Length == 0)
            throw LoraShellException.InvalidData("InvalidTokenizer", $"'{full}' is empty; a SentencePiece tokenizer.model holds the vocabulary (the download may have failed).", full);
        try
        {
            using var stream = File.OpenRead(full);
            return new SentencePieceTokenizer(full, LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false));
        }
        catch (Exception e) when (e is not LoraShellException)
        {
            throw LoraShellException.InvalidData("InvalidTokenizer", $"'{full}' is not a SentencePiece model that Microsoft.ML.Tokenizers can read: {e.Message}", full);
        }
    }

    public IReadOnlyList<int> Encode(string text) => _inner.EncodeToIds(text, considerPreTokenization: false, considerNormalization: true);

    /// <summary>As transformers' LlamaTokenizer (add_bos_token true): BOS, then the text.</summary>
    public IReadOnlyList<int> EncodeWithSpecialTokens(string text) => new[] { _inner.BeginningOfSentenceId }.Concat(Encode(text)).ToList();

    /// <summary>Tokens with spans: SentencePiece's offsets are in its normalised text, which starts with the dummy-prefix ▁.</summary>
    public IReadOnlyList<TokenSpan> Tokenize(string text, bool addSpecialTokens)
    {
        var result = new List<TokenSpan>();
        if (addSpecialTokens) result.Add(new TokenSpan(_inner.BeginningOfSentenceId, "<s>", 0, 0, true));
        foreach (var t in _inner.EncodeToTokens(text, out _, considerPreTokenization: false, considerNormalization: true))
        {
            var (offset, length) = t.Offset.GetOffsetAndLength(text.Length + 1);
            int start = Math.Clamp(offset - 1, 0, text.Length), end = Math.Clamp(offset + length - 1, start, text.Length);
            result.Add(new TokenSpan(t.Id, t.Value, start, end, false));
        }
        return result;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
        => _inner.Decode(skipSpecialTokens ? ids.Where(id => id != _inner.BeginningOfSentenceId && id != _inner.EndOfSentenceId) : ids);
}
