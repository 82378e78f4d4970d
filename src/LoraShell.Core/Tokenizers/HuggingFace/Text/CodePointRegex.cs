using System.Globalization;
using System.Text.RegularExpressions;

namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>
/// A .NET regex that matches code points the way Oniguruma (the Rust crate's regex engine) does.
/// .NET regexes see UTF-16 code units, so <c>\p{L}</c> does not match an astral letter such as U+1D518
/// (its two surrogates are category Cs). Before matching, every astral code point is replaced by one BMP
/// stand-in of the same general category; the match positions are then mapped back. Category classes, <c>\s</c>,
/// <c>.</c> and quantifiers therefore count and classify astral characters exactly like Oniguruma.
/// </summary>
internal sealed class CodePointRegex
{
    private readonly Regex _regex;

    private CodePointRegex(Regex regex, string pattern)
    {
        _regex = regex;
        Pattern = pattern;
    }

    public string Pattern { get; }

    public static CodePointRegex Create(string pattern, string component, string path)
    {
        foreach (var ch in pattern)
        {
            if (char.IsSurrogate(ch))
            {
                throw new TokenizerFormatException(
                    "Regex patterns that contain astral (non-BMP) literal characters are not supported (matching replaces astral characters by same-category stand-ins). Supported: patterns whose literals are BMP characters.",
                    component, path);
            }
        }
        if (pattern.Contains("[:", StringComparison.Ordinal))
        {
            throw new TokenizerFormatException(
                "POSIX bracket expressions ([:alpha:] etc.) are not supported: .NET reads them differently from Oniguruma.",
                component, path);
        }
        try
        {
            // Oniguruma's default syntax treats ^ and $ as line anchors, like .NET's Multiline option.
            var regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant | RegexOptions.Multiline);
            return new CodePointRegex(regex, pattern);
        }
        catch (ArgumentException ex)
        {
            throw new TokenizerFormatException(
                $"Regex pattern '{pattern}' cannot be translated to a .NET regex: {ex.Message}. Supported: the Oniguruma subset shared with .NET (classes, \\p{{..}} categories, groups, lookaround, lazy/greedy quantifiers).",
                component, path, ex);
        }
    }

    /// <summary>Appends every match as a (start, end) UTF-16 range of <paramref name="input"/>.</summary>
    public void Matches(string input, List<(int Start, int End)> output)
    {
        if (input.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in _regex.EnumerateMatches(input))
            {
                output.Add((m.Index, m.Index + m.Length));
            }
            return;
        }

        // map[i] = index in input of stand-in character i; map[length] = input.Length.
        var buffer = new char[input.Length];
        var map = new int[input.Length + 1];
        int n = 0;
        for (int i = 0; i < input.Length;)
        {
            int cp = UnicodeProps.CodePointAt(input, i, out int len);
            map[n] = i;
            buffer[n++] = len == 2 ? StandIn(cp) : input[i];
            i += len;
        }
        map[n] = input.Length;
        foreach (var m in _regex.EnumerateMatches(buffer.AsSpan(0, n)))
        {
            output.Add((map[m.Index], map[m.Index + m.Length]));
        }
    }

    /// <summary>A BMP character with the same general category as the astral code point.</summary>
    internal static char StandIn(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp) switch
    {
        UnicodeCategory.UppercaseLetter => '\u0531',      // ARMENIAN CAPITAL LETTER AYB
        UnicodeCategory.LowercaseLetter => '\u0561',      // ARMENIAN SMALL LETTER AYB
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',          // HEBREW LETTER ALEF
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u0488',
        UnicodeCategory.DecimalDigitNumber => '\u0660',   // ARABIC-INDIC DIGIT ZERO
        UnicodeCategory.LetterNumber => '\u2160',         // ROMAN NUMERAL ONE
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00B4',
        UnicodeCategory.OtherSymbol => '\u00A6',
        UnicodeCategory.SpaceSeparator => '\u2000',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378',                                     // unassigned (OtherNotAssigned)
    };
}
