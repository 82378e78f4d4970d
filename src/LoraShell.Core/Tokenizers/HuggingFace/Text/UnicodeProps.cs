using System.Globalization;
using System.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>
/// Character predicates with the meaning the Rust crate gives them (Rust std / regex crate semantics),
/// expressed on code points. .NET's Unicode tables are close to Rust's; where they are not, the difference
/// is limited to code points assigned in very recent Unicode versions.
/// </summary>
internal static class UnicodeProps
{
    /// <summary>Rust <c>char::is_whitespace</c> / regex <c>\s</c>: the Unicode White_Space property.</summary>
    public static bool IsWhiteSpace(int cp) => cp < 0x10000 && char.IsWhiteSpace((char)cp);

    /// <summary>
    /// Rust regex <c>\w</c> (Unicode): Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
    /// Alphabetic = letters, letter numbers and Other_Alphabetic; the Other_Alphabetic code points that are not
    /// marks are the circled/squared Latin letters listed below.
    /// </summary>
    public static bool IsWordChar(int cp)
    {
        if (cp < 0x80)
        {
            return (uint)(cp - 'a') <= 'z' - 'a' || (uint)(cp - 'A') <= 'Z' - 'A' || (uint)(cp - '0') <= 9 || cp == '_';
        }
        if (cp == 0x200C || cp == 0x200D) return true;
        switch (CharUnicodeInfo.GetUnicodeCategory(cp))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.NonSpacingMark:
            case UnicodeCategory.SpacingCombiningMark:
            case UnicodeCategory.EnclosingMark:
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.ConnectorPunctuation:
                return true;
            default:
                return (cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149)
                    || (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189);
        }
    }

    /// <summary>Rust <c>char::is_numeric</c>: general categories Nd, Nl, No.</summary>
    public static bool IsNumeric(int cp)
    {
        var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
    }

    /// <summary>
    /// The crate's <c>is_punc</c>: ASCII punctuation, or Unicode punctuation as the <c>unicode_categories</c> crate
    /// (Unicode 8.0) defines it. Punctuation added to Unicode later (e.g. U+16E98) is not punctuation there.
    /// </summary>
    public static bool IsPunctuation(int cp)
    {
        if (cp < 0x80)
        {
            return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
        }
        return InRanges(Normalization.Unicode9Tables.Punctuation80Ranges, cp);
    }

    /// <summary>Binary search in a sorted array of inclusive (start, end) pairs.</summary>
    public static bool InRanges(int[] ranges, int cp)
    {
        int lo = 0, hi = ranges.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < ranges[2 * mid]) hi = mid - 1;
            else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    /// <summary>
    /// Rust's <c>char::to_lowercase</c> for one code point, as a single code point (the only multi-character lowercase
    /// mapping, U+0130, is handled by the caller). .NET's invariant casing table predates the case pairs of Unicode
    /// 16 and 17 that current Rust knows; those are added here (found by sweeping every code point against the crate).
    /// </summary>
    public static int ToLowerSingle(int cp)
    {
        if (cp >= 0xD800 && cp <= 0xDFFF) return cp;
        switch (cp)
        {
            case 0x1C89: return 0x1C8A;
            case 0xA7CB: return 0x0264;
            case 0xA7CC: return 0xA7CD;
            case 0xA7CE: return 0xA7CF;
            case 0xA7D2: return 0xA7D3;
            case 0xA7D4: return 0xA7D5;
            case 0xA7DA: return 0xA7DB;
            case 0xA7DC: return 0x019B;
        }
        if (cp >= 0x10D50 && cp <= 0x10D65) return cp + 0x20;    // Garay (Unicode 16)
        if (cp >= 0x16EA0 && cp <= 0x16EB8) return cp + 0x1B;    // Beria Erfe (Unicode 17)
        return Rune.ToLowerInvariant(new Rune(cp)).Value;
    }

    /// <summary>UTF-16 units of the character starting at <paramref name="i"/>: 2 for a surrogate pair, else 1 (a lone surrogate counts alone).</summary>
    public static int CharLength(string s, int i) => char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;

    /// <summary>The start of the character that unit <paramref name="i"/> belongs to: one back from the low half of a surrogate pair.</summary>
    public static int CharStart(string s, int i) => i > 0 && char.IsLowSurrogate(s[i]) && char.IsHighSurrogate(s[i - 1]) ? i - 1 : i;

    /// <summary>Code point at <paramref name="i"/>; a lone surrogate is returned as itself.</summary>
    public static int CodePointAt(string s, int i, out int length)
    {
        length = CharLength(s, i);
        return length == 2 ? char.ConvertToUtf32(s[i], s[i + 1]) : s[i];
    }

    public static int CodePointAt(ReadOnlySpan<char> s, int i, out int length)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            length = 2;
            return char.ConvertToUtf32(c, s[i + 1]);
        }
        length = 1;
        return c;
    }

    /// <summary>UTF-8 length of a code point as the Rust crate would store it (lone surrogates become U+FFFD, 3 bytes).</summary>
    public static int Utf8Length(int cp) => cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

    public static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp < 0x10000) sb.Append((char)cp);
        else
        {
            sb.Append(char.ConvertFromUtf32(cp));
        }
    }
}
