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
    public int VocabSize => _inner.Vocabulary.Count;
    public int BosId => _inner.BeginningOfSentenceId;
    public int EosId => _inner.EndOfSentenceId;

    public static SentencePieceTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("TokenizerNotFound", $"Tokenizer file '{full}' does not exist.", full);
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

    public string Decode(IEnumerable<int> ids) => _inner.Decode(ids);
}
