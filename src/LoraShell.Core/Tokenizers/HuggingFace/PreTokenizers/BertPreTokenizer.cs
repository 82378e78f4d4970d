using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

/// <summary>BertPreTokenizer: split on whitespace (removed), then isolate every punctuation character.</summary>
internal sealed class BertPreTokenizer : IPreTokenizer
{
    private static readonly CharPredicatePattern s_whitespace = new(UnicodeProps.IsWhiteSpace);
    private static readonly CharPredicatePattern s_punctuation = new(UnicodeProps.IsPunctuation);

    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit) =>
        piece.Split(s_whitespace, SplitBehavior.Removed, false, word =>
        {
            if (!word.IsEmpty) word.Split(s_punctuation, SplitBehavior.Isolated, false, emit);
        });
}
