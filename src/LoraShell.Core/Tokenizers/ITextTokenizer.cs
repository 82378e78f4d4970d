namespace LoraShell.Core.Tokenizers;

/// <summary>Text ↔ token ids, without special tokens: callers add BOS themselves.</summary>
public interface ITextTokenizer
{
    int VocabSize { get; }
    int BosId { get; }
    int EosId { get; }
    /// <summary>Where the tokenizer was loaded from.</summary>
    string Source { get; }
    IReadOnlyList<int> Encode(string text);
    /// <summary>Decodes ids that follow BOS (a leading space after BOS is dropped, as sentencepiece does).</summary>
    string Decode(IEnumerable<int> ids);
}
