namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>One piece of a pattern search: a [Start, End) UTF-16 range and whether it is a match.</summary>
internal readonly record struct MatchSpan(int Start, int End, bool IsMatch);

/// <summary>
/// The crate's <c>Pattern</c> trait: a pattern turns a string into contiguous, ordered spans that cover it,
/// each flagged as match or not. Used by Split, Replace and the char-based splitters.
/// </summary>
internal abstract class SplitPattern
{
    public abstract void FindMatches(string input, List<MatchSpan> output);

    /// <summary>Builds the spans from a list of non-overlapping, ordered match ranges.</summary>
    protected static void FromRanges(string input, List<(int Start, int End)> ranges, List<MatchSpan> output)
    {
        if (input.Length == 0)
        {
            output.Add(new MatchSpan(0, 0, false));
            return;
        }
        int prev = 0;
        foreach (var (start, end) in ranges)
        {
            if (prev != start) output.Add(new MatchSpan(prev, start, false));
            output.Add(new MatchSpan(start, end, true));
            prev = end;
        }
        if (prev != input.Length) output.Add(new MatchSpan(prev, input.Length, false));
    }
}

/// <summary>A literal string: the crate escapes it into a regex, which finds leftmost non-overlapping occurrences.</summary>
internal sealed class LiteralPattern : SplitPattern
{
    private readonly string _literal;

    public LiteralPattern(string literal)
    {
        if (literal.Length == 0) throw new ArgumentException("empty literal pattern", nameof(literal));
        _literal = literal;
    }

    public string Literal => _literal;

    public override void FindMatches(string input, List<MatchSpan> output)
    {
        if (input.Length == 0)
        {
            output.Add(new MatchSpan(0, 0, false));
            return;
        }
        int prev = 0;
        int at = 0;
        while (at <= input.Length - _literal.Length)
        {
            int found = _literal.Length == 1
                ? input.IndexOf(_literal[0], at)
                : input.IndexOf(_literal, at, StringComparison.Ordinal);
            if (found < 0) break;
            if (prev != found) output.Add(new MatchSpan(prev, found, false));
            output.Add(new MatchSpan(found, found + _literal.Length, true));
            prev = at = found + _literal.Length;
        }
        if (prev != input.Length) output.Add(new MatchSpan(prev, input.Length, false));
    }
}

/// <summary>An Oniguruma regex (code-point exact, see <see cref="CodePointRegex"/>).</summary>
internal sealed class RegexPattern : SplitPattern
{
    private readonly CodePointRegex _regex;

    public RegexPattern(CodePointRegex regex) => _regex = regex;

    public override void FindMatches(string input, List<MatchSpan> output)
    {
        var ranges = new List<(int, int)>();
        if (input.Length > 0) _regex.Matches(input, ranges);
        FromRanges(input, ranges, output);
    }
}

/// <summary>A char predicate: every matching code point is its own match (the crate's <c>impl Pattern for Fn(char)</c>).</summary>
internal sealed class CharPredicatePattern : SplitPattern
{
    private readonly Func<int, bool> _predicate;

    public CharPredicatePattern(Func<int, bool> predicate) => _predicate = predicate;

    public override void FindMatches(string input, List<MatchSpan> output)
    {
        if (input.Length == 0)
        {
            output.Add(new MatchSpan(0, 0, false));
            return;
        }
        int lastOffset = 0;
        for (int i = 0; i < input.Length;)
        {
            int cp = UnicodeProps.CodePointAt(input, i, out int len);
            if (_predicate(cp))
            {
                if (lastOffset < i) output.Add(new MatchSpan(lastOffset, i, false));
                output.Add(new MatchSpan(i, i + len, true));
                lastOffset = i + len;
            }
            i += len;
        }
        if (input.Length > lastOffset) output.Add(new MatchSpan(lastOffset, input.Length, false));
    }
}
