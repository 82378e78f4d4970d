using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

/// <summary>Split on a literal or regex pattern with a delimiter behaviour, optionally inverted.</summary>
internal sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit) => piece.Split(pattern, behavior, invert, emit);
}
