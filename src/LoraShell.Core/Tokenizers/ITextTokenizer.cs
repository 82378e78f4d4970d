namespace LoraShell.Core.Tokenizers;

/// <summary>One token of a text: its id, its string in the vocabulary, and the UTF-16 span of the text it covers.</summary>
public readonly record struct TokenSpan(int Id, string Token, int Start, int End, bool Special);

/// <summary>
/// Text ↔ token ids. <see cref="EncodeWithSpecialTokens"/> is what <c>tokenizer(text)</c> returns in
/// transformers (the post-processor's BOS/EOS; llama2.c and SentencePiece files: BOS + text): the sequence
/// LoraShell scores and generates from. <see cref="Encode"/> is the text alone.
/// </summary>
public interface ITextTokenizer
{
    int VocabSize { get; }
    /// <summary>The beginning-of-sequence id, when the tokenizer has one.</summary>
    int? BosId { get; }
    /// <summary>The end-of-sequence id, when the tokenizer has one.</summary>
    int? EosId { get; }
    /// <summary>Where the tokenizer was loaded from.</summary>
    string Source { get; }
    /// <summary>The files that make up the tokenizer (copied beside an exported model).</summary>
    IReadOnlyList<string> Files { get; }
    /// <summary>The ids of the text alone, no special tokens added.</summary>
    IReadOnlyList<int> Encode(string text);
    /// <summary>The ids <c>tokenizer(text)</c> returns: with the special tokens the tokenizer adds around a text.</summary>
    IReadOnlyList<int> EncodeWithSpecialTokens(string text);
    /// <summary>Every token with its string and the span of <paramref name="text"/> it covers (special tokens added: empty spans).</summary>
    IReadOnlyList<TokenSpan> Tokenize(string text, bool addSpecialTokens);
    /// <summary>Text of the ids; special tokens kept or left out.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);
    /// <summary>Ids at which generation stops (end of sequence, end of turn).</summary>
    IReadOnlyCollection<int> StopIds { get; }
    /// <summary>The chat template and special-token strings, when the tokenizer's config has a template.</summary>
    ChatFormat? Chat { get; }
}
