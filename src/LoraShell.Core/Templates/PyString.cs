using System.Globalization;
using System.Text;

namespace LoraShell.Core.Templates;

/// <summary>
/// Python str semantics on .NET strings. Python indexes strings by code point while .NET uses UTF-16
/// units, so anything that counts, indexes or slices goes through code points here (emoji count as 1).
/// </summary>
internal static class PyString
{
    /// <summary>Python str.isspace: .NET whitespace plus the ASCII separators U+001C..U+001F.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || (c >= '\u001c' && c <= '\u001f');

    private static bool IsSpace(int cp) => cp <= 0xFFFF && IsSpace((char)cp);

    public static string RStripWhitespace(string s)
    {
        int end = s.Length;
        while (end > 0 && IsSpace(s[end - 1]))
        {
            end--;
        }

        return s[..end];
    }

    public static bool HasSurrogates(string s)
    {
        foreach (char c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    public static int[] CodePoints(string s)
    {
        var cps = new List<int>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsSurrogatePair(s, i))
            {
                cps.Add(char.ConvertToUtf32(c, s[i + 1]));
                i++;
            }
            else
            {
                cps.Add(c);
            }
        }

        return cps.ToArray();
    }

    public static string FromCodePoints(IEnumerable<int> cps)
    {
        var sb = new StringBuilder();
        foreach (int cp in cps)
        {
            AppendCodePoint(sb, cp);
        }

        return sb.ToString();
    }

    public static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp > 0xFFFF)
        {
            sb.Append(char.ConvertFromUtf32(cp));
        }
        else
        {
            sb.Append((char)cp);
        }
    }

    public static int Length(string s) => HasSurrogates(s) ? CodePoints(s).Length : s.Length;

    /// <summary>The characters of a string as Python iterates them (one string per code point).</summary>
    public static IEnumerable<string> Chars(string s)
    {
        if (!HasSurrogates(s))
        {
            foreach (char c in s)
            {
                yield return c.ToString();
            }

            yield break;
        }

        foreach (int cp in CodePoints(s))
        {
            yield return FromCodePoints([cp]);
        }
    }

    /// <summary>Python s[i] with negative indexes; null when out of range (Jinja turns that into undefined).</summary>
    public static string? Index(string s, long index)
    {
        int[] cps = CodePoints(s);
        long i = index < 0 ? index + cps.Length : index;
        return i < 0 || i >= cps.Length ? null : FromCodePoints([cps[(int)i]]);
    }

    public static string Slice(string s, long? start, long? stop, long? step)
    {
        int[] cps = CodePoints(s);
        var indexes = PySlice.Indices(cps.Length, start, stop, step);
        var sb = new StringBuilder();
        foreach (int i in indexes)
        {
            AppendCodePoint(sb, cps[i]);
        }

        return sb.ToString();
    }

    /// <summary>Python code point ordering (not UTF-16 ordinal, which misorders astral characters).</summary>
    public static int Compare(string a, string b)
    {
        if (!HasSurrogates(a) && !HasSurrogates(b))
        {
            return Math.Sign(string.CompareOrdinal(a, b));
        }

        int[] x = CodePoints(a);
        int[] y = CodePoints(b);
        for (int i = 0; i < Math.Min(x.Length, y.Length); i++)
        {
            if (x[i] != y[i])
            {
                return x[i] < y[i] ? -1 : 1;
            }
        }

        return x.Length.CompareTo(y.Length);
    }

    // ---- Literals -----------------------------------------------------------------------------

    /// <summary>
    /// Decodes a Jinja string literal body the way Jinja does: non-ASCII characters are first written as
    /// backslash escapes, then the whole text is decoded with Python's unicode-escape codec.
    /// </summary>
    public static string DecodeLiteral(string raw)
    {
        var ascii = new StringBuilder(raw.Length);
        foreach (int cp in CodePoints(raw))
        {
            if (cp < 0x80)
            {
                ascii.Append((char)cp);
            }
            else if (cp < 0x100)
            {
                ascii.Append("\\x").Append(cp.ToString("x2", CultureInfo.InvariantCulture));
            }
            else if (cp < 0x10000)
            {
                ascii.Append("\\u").Append(cp.ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                ascii.Append("\\U").Append(cp.ToString("x8", CultureInfo.InvariantCulture));
            }
        }

        string s = ascii.ToString();
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }

            if (i + 1 >= s.Length)
            {
                throw new JinjaError(ChatTemplateErrorKind.Syntax, "\\ at end of string");
            }

            char e = s[++i];
            switch (e)
            {
                case '\n': break; // line continuation
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x':
                    AppendCodePoint(sb, ReadHex(s, ref i, 2));
                    break;
                case 'u':
                    AppendCodePoint(sb, ReadHex(s, ref i, 4));
                    break;
                case 'U':
                    int big = ReadHex(s, ref i, 8);
                    if (big > 0x10FFFF)
                    {
                        throw new JinjaError(ChatTemplateErrorKind.Syntax, "illegal Unicode character");
                    }

                    AppendCodePoint(sb, big);
                    break;
                case 'N':
                    throw JinjaError.Unsupported("\\N{...} escape", "named Unicode escapes are not supported");
                default:
                    if (e >= '0' && e <= '7')
                    {
                        int value = e - '0';
                        for (int k = 0; k < 2 && i + 1 < s.Length && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
                        {
                            value = (value * 8) + (s[++i] - '0');
                        }

                        AppendCodePoint(sb, value);
                    }
                    else
                    {
                        sb.Append('\\').Append(e); // Python keeps unknown escapes verbatim
                    }

                    break;
            }
        }

        return sb.ToString();
    }

    private static int ReadHex(string s, ref int i, int digits)
    {
        string hex = i + digits < s.Length ? s.Substring(i + 1, digits) : "";
        if (hex.Length != digits || !int.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value))
        {
            throw new JinjaError(ChatTemplateErrorKind.Syntax, "truncated escape sequence in string literal");
        }

        i += digits;
        return value;
    }

    // ---- repr ---------------------------------------------------------------------------------

    /// <summary>Python repr() of a str, including its quote choice and escapes.</summary>
    public static string Repr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2);
        sb.Append(quote);
        foreach (int cp in CodePoints(s))
        {
            switch (cp)
            {
                case '\\': sb.Append("\\\\"); continue;
                case '\t': sb.Append("\\t"); continue;
                case '\n': sb.Append("\\n"); continue;
                case '\r': sb.Append("\\r"); continue;
            }

            if (cp == quote)
            {
                sb.Append('\\').Append(quote);
            }
            else if (IsPrintable(cp))
            {
                AppendCodePoint(sb, cp);
            }
            else if (cp < 0x100)
            {
                sb.Append("\\x").Append(cp.ToString("x2", CultureInfo.InvariantCulture));
            }
            else if (cp < 0x10000)
            {
                sb.Append("\\u").Append(cp.ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                sb.Append("\\U").Append(cp.ToString("x8", CultureInfo.InvariantCulture));
            }
        }

        sb.Append(quote);
        return sb.ToString();
    }

    private static bool IsPrintable(int cp)
    {
        if (cp == ' ')
        {
            return true;
        }

        if (cp >= 0xD800 && cp <= 0xDFFF)
        {
            return false;
        }

        return CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }

    // ---- Case mapping -------------------------------------------------------------------------

    // Python uses full Unicode case mappings (ß -> SS, final sigma, ligatures, Greek iota forms, İ).
    // .NET only has simple mappings, so strings containing such characters are refused instead of
    // being converted differently.
    private static void GuardCaseMapping(string s, string operation)
    {
        foreach (int cp in CodePoints(s))
        {
            bool special = cp is 0x00DF or 0x0130 or 0x0149 or 0x01F0 or 0x0390 or 0x03B0 or 0x03A3 or 0x0587
                || (cp >= 0x01C4 && cp <= 0x01CC) || (cp >= 0x01F1 && cp <= 0x01F3)
                || (cp >= 0x1E96 && cp <= 0x1E9E) || (cp >= 0x1F00 && cp <= 0x1FFF)
                || (cp >= 0xFB00 && cp <= 0xFB17) || (cp >= 0x10400 && cp <= 0x1E94F);
            if (special)
            {
                throw JinjaError.Unsupported(
                    operation, $"{operation} of U+{cp:X4} needs Python's full Unicode case mapping, which is not implemented");
            }
        }
    }

    public static string Upper(string s)
    {
        GuardCaseMapping(s, "str.upper");
        return s.ToUpperInvariant();
    }

    public static string Lower(string s)
    {
        GuardCaseMapping(s, "str.lower");
        return s.ToLowerInvariant();
    }

    private static bool IsCased(int cp)
    {
        var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;
    }

    private static string CpUpper(int cp) => FromCodePoints([cp]).ToUpperInvariant();

    private static string CpLower(int cp) => FromCodePoints([cp]).ToLowerInvariant();

    /// <summary>Python str.title(): a cased character after another cased character is lowered.</summary>
    public static string Title(string s)
    {
        GuardCaseMapping(s, "str.title");
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (int cp in CodePoints(s))
        {
            sb.Append(previousCased ? CpLower(cp) : CpUpper(cp));
            previousCased = IsCased(cp);
        }

        return sb.ToString();
    }

    /// <summary>Python str.capitalize(): first character upper, the rest lower.</summary>
    public static string Capitalize(string s)
    {
        GuardCaseMapping(s, "str.capitalize");
        int[] cps = CodePoints(s);
        if (cps.Length == 0)
        {
            return s;
        }

        return CpUpper(cps[0]) + FromCodePoints(cps.Skip(1)).ToLowerInvariant();
    }

    /// <summary>Jinja's title filter: upper-case the first letter after '-', whitespace or an opening bracket.</summary>
    public static string JinjaTitle(string s)
    {
        GuardCaseMapping(s, "filter 'title'");
        var sb = new StringBuilder(s.Length);
        int[] cps = CodePoints(s);
        int i = 0;
        while (i < cps.Length)
        {
            int start = i;
            while (i < cps.Length && IsTitleSeparator(cps[i]))
            {
                i++;
            }

            sb.Append(FromCodePoints(cps[start..i]));
            if (i >= cps.Length)
            {
                break;
            }

            int wordStart = i;
            while (i < cps.Length && !IsTitleSeparator(cps[i]))
            {
                i++;
            }

            sb.Append(CpUpper(cps[wordStart]));
            sb.Append(FromCodePoints(cps[(wordStart + 1)..i]).ToLowerInvariant());
        }

        return sb.ToString();
    }

    private static bool IsTitleSeparator(int cp) => cp is '-' or '(' or '{' or '[' or '<' || IsSpace(cp);

    public static bool IsLower(string s) => HasCased(s, out bool anyUpper, out _) && !anyUpper;

    public static bool IsUpper(string s) => HasCased(s, out _, out bool anyLower) && !anyLower;

    private static bool HasCased(string s, out bool anyUpper, out bool anyLower)
    {
        anyUpper = anyLower = false;
        bool any = false;
        foreach (int cp in CodePoints(s))
        {
            var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
            if (cat is UnicodeCategory.UppercaseLetter or UnicodeCategory.TitlecaseLetter)
            {
                anyUpper = true;
                any = true;
            }
            else if (cat == UnicodeCategory.LowercaseLetter)
            {
                anyLower = true;
                any = true;
            }
        }

        return any;
    }

    // ---- strip / split / replace / find --------------------------------------------------------

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        int[] cps = CodePoints(s);
        HashSet<int>? set = chars is null ? null : [.. CodePoints(chars)];
        bool Remove(int cp) => set is null ? IsSpace(cp) : set.Contains(cp);
        int start = 0;
        int end = cps.Length;
        if (left)
        {
            while (start < end && Remove(cps[start]))
            {
                start++;
            }
        }

        if (right)
        {
            while (end > start && Remove(cps[end - 1]))
            {
                end--;
            }
        }

        return FromCodePoints(cps[start..end]);
    }

    public static List<object?> Split(string s, string? sep, long maxsplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int[] cps = CodePoints(s);
            int i = 0;
            long splits = 0;
            while (true)
            {
                while (i < cps.Length && IsSpace(cps[i]))
                {
                    i++;
                }

                if (i >= cps.Length)
                {
                    break;
                }

                if (maxsplit >= 0 && splits >= maxsplit)
                {
                    // The remainder keeps its trailing whitespace, exactly as Python does.
                    parts.Add(FromCodePoints(cps[i..]));
                    break;
                }

                int start = i;
                while (i < cps.Length && !IsSpace(cps[i]))
                {
                    i++;
                }

                parts.Add(FromCodePoints(cps[start..i]));
                splits++;
            }

            return parts;
        }

        if (sep.Length == 0)
        {
            throw JinjaError.Value("empty separator");
        }

        int pos = 0;
        long count = 0;
        while (maxsplit < 0 || count < maxsplit)
        {
            int idx = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (idx < 0)
            {
                break;
            }

            parts.Add(s[pos..idx]);
            pos = idx + sep.Length;
            count++;
        }

        parts.Add(s[pos..]);
        return parts;
    }

    public static List<object?> RSplit(string s, string? sep, long maxsplit)
    {
        if (maxsplit < 0)
        {
            return Split(s, sep, maxsplit);
        }

        if (sep is null)
        {
            int[] cps = CodePoints(s);
            var rev = new List<object?>();
            int i = cps.Length;
            long splits = 0;
            while (true)
            {
                while (i > 0 && IsSpace(cps[i - 1]))
                {
                    i--;
                }

                if (i <= 0)
                {
                    break;
                }

                if (splits >= maxsplit)
                {
                    rev.Add(FromCodePoints(cps[..i]));
                    break;
                }

                int end = i;
                while (i > 0 && !IsSpace(cps[i - 1]))
                {
                    i--;
                }

                rev.Add(FromCodePoints(cps[i..end]));
                splits++;
            }

            rev.Reverse();
            return rev;
        }

        if (sep.Length == 0)
        {
            throw JinjaError.Value("empty separator");
        }

        var parts = new List<object?>();
        int stop = s.Length;
        long count = 0;
        while (count < maxsplit)
        {
            int idx = stop - sep.Length < 0 ? -1 : s.LastIndexOf(sep, stop - 1, stop, StringComparison.Ordinal);
            if (idx < 0)
            {
                break;
            }

            parts.Add(s[(idx + sep.Length)..stop]);
            stop = idx;
            count++;
        }

        parts.Add(s[..stop]);
        parts.Reverse();
        return parts;
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count == 0)
        {
            return s;
        }

        if (old.Length == 0)
        {
            // Python inserts the replacement before every code point and at the end.
            var sb = new StringBuilder();
            long done = 0;
            foreach (string ch in Chars(s))
            {
                if (count < 0 || done < count)
                {
                    sb.Append(replacement);
                    done++;
                }

                sb.Append(ch);
            }

            if (count < 0 || done < count)
            {
                sb.Append(replacement);
            }

            return sb.ToString();
        }

        var result = new StringBuilder();
        int pos = 0;
        long replaced = 0;
        while (count < 0 || replaced < count)
        {
            int idx = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (idx < 0)
            {
                break;
            }

            result.Append(s, pos, idx - pos).Append(replacement);
            pos = idx + old.Length;
            replaced++;
        }

        result.Append(s, pos, s.Length - pos);
        return result.ToString();
    }

    /// <summary>Python str.find without start/end: code point index or -1.</summary>
    public static long Find(string s, string sub, bool last)
    {
        int idx = last ? s.LastIndexOf(sub, StringComparison.Ordinal) : s.IndexOf(sub, StringComparison.Ordinal);
        if (idx < 0)
        {
            return -1;
        }

        return Length(s[..idx]);
    }

    public static long Count(string s, string sub)
    {
        if (sub.Length == 0)
        {
            return Length(s) + 1;
        }

        long n = 0;
        int pos = 0;
        while ((pos = s.IndexOf(sub, pos, StringComparison.Ordinal)) >= 0)
        {
            n++;
            pos += sub.Length;
        }

        return n;
    }

    public static string Repeat(string s, long times)
    {
        if (times <= 0 || s.Length == 0)
        {
            return "";
        }

        if (times * s.Length > 100_000_000)
        {
            throw JinjaError.Unsupported("string repetition", "result too large");
        }

        return new StringBuilder(s.Length * (int)times).Insert(0, s, (int)times).ToString();
    }
}
