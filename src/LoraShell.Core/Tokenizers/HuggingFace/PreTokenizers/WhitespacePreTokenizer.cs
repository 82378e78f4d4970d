using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

/// <summary>
/// The <c>Whitespace</c> pre-tokenizer: the crate keeps the matches of <c>\w+|[^\w\s]+</c> (Rust regex, Unicode).
/// Written as a scan over character classes, which is exactly what that regex matches: maximal runs of word
/// characters and maximal runs of characters that are neither word nor whitespace.
/// </summary>
internal sealed class WhitespacePreTokenizer : IPreTokenizer
{
    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit)
    {
        var spans = new List<MatchSpan>();
        string s = piece.Normalized;
        int runStart = 0, runClass = -1; // 0 word, 1 other, 2 whitespace
        for (int i = 0; i < s.Length;)
        {
            int cp = UnicodeProps.CodePointAt(s, i, out int len);
            int cls = UnicodeProps.IsWordChar(cp) ? 0 : UnicodeProps.IsWhiteSpace(cp) ? 2 : 1;
            if (cls != runClass || cls == 2)
            {
                if (runClass >= 0) spans.Add(new MatchSpan(runStart, i, runClass != 2));
                runStart = i;
                runClass = cls;
            }
            i += len;
        }
        if (runClass >= 0) spans.Add(new MatchSpan(runStart, s.Length, runClass != 2));
        if (spans.Count == 0) spans.Add(new MatchSpan(0, 0, false));
        // The crate splits on Invert(regex) with Removed: the non-matches (whitespace) are dropped.
        for (int i = 0; i < spans.Count; i++) spans[i] = spans[i] with { IsMatch = !spans[i].IsMatch };
        piece.SplitOnSpans(spans, SplitBehavior.Removed, emit);
    }
}
