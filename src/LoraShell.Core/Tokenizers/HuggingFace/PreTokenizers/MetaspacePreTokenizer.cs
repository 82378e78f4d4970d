using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

internal enum PrependScheme
{
    Always,
    First,
    Never,
}

/// <summary>
/// Metaspace: spaces become the replacement character (▁), a ▁ is prepended per the scheme, then the piece is split
/// before every ▁ (if <c>split</c>). Scheme "first" prepends only to a piece whose original offset is 0, as the
/// crate does (not to "the first piece").
/// </summary>
internal sealed class MetaspacePreTokenizer : IPreTokenizer
{
    private static readonly LiteralPattern s_space = new(" ");
    private readonly string _replacement;
    private readonly PrependScheme _scheme;
    private readonly bool _split;
    private readonly LiteralPattern _replacementPattern;

    public MetaspacePreTokenizer(string replacement, PrependScheme scheme, bool split)
    {
        _replacement = replacement;
        _scheme = scheme;
        _split = split;
        _replacementPattern = new LiteralPattern(replacement);
    }

    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit)
    {
        piece.Replace(s_space, _replacement);
        bool needsPrefix = !piece.Normalized.StartsWith(_replacement, StringComparison.Ordinal);
        if (needsPrefix && (_scheme == PrependScheme.Always || (_scheme == PrependScheme.First && piece.OriginalShift == 0)))
        {
            piece.Prepend(_replacement);
        }
        if (_split) piece.Split(_replacementPattern, SplitBehavior.MergedWithNext, false, emit);
        else emit(piece);
    }
}
