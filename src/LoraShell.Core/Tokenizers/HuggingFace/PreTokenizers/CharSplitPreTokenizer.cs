using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

/// <summary>Splitters defined by a character predicate: Whitespace-like, Digits, Punctuation, CharDelimiterSplit.</summary>
internal sealed class CharSplitPreTokenizer(Func<int, bool> predicate, SplitBehavior behavior) : IPreTokenizer
{
    private readonly CharPredicatePattern _pattern = new(predicate);

    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit) => piece.Split(_pattern, behavior, false, emit);
}
