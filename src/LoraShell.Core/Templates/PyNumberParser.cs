using System.Globalization;

namespace LoraShell.Core.Templates;

/// <summary>Python's int()/float() string grammar (ASCII digits; underscores between digits).</summary>
internal static class PyNumberParser
{
    private static string? Clean(string s, bool allowDot)
    {
        string t = PyString.Strip(s, null, true, true);
        if (t.Length == 0)
        {
            return null;
        }

        foreach (char c in t)
        {
            if (char.IsDigit(c) && !char.IsAsciiDigit(c))
            {
                throw JinjaError.Unsupported("non-ASCII digits", "numbers written with non-ASCII digits are not supported");
            }
        }

        // Underscores are only valid between two digits.
        for (int i = 0; i < t.Length; i++)
        {
            if (t[i] == '_' && (i == 0 || i == t.Length - 1 || !char.IsAsciiDigit(t[i - 1]) || !char.IsAsciiDigit(t[i + 1])))
            {
                return null;
            }
        }

        return allowDot || !t.Contains('.') ? t.Replace("_", "") : null;
    }

    public static bool TryParseInt(string s, out long value)
    {
        value = 0;
        string? t = Clean(s, allowDot: false);
        if (t is null)
        {
            return false;
        }

        int i = t[0] is '+' or '-' ? 1 : 0;
        if (i >= t.Length || !t[i..].All(char.IsAsciiDigit))
        {
            return false;
        }

        if (!long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value))
        {
            throw JinjaError.Unsupported("big integer", "integer does not fit in 64 bits");
        }

        return true;
    }

    public static bool TryParseFloat(string s, out double value)
    {
        value = 0;
        string? t = Clean(s, allowDot: true);
        if (t is null)
        {
            return false;
        }

        string body = t[0] is '+' or '-' ? t[1..] : t;
        string lower = body.ToLowerInvariant();
        if (lower is "inf" or "infinity" or "nan")
        {
            value = lower == "nan" ? double.NaN : (t[0] == '-' ? double.NegativeInfinity : double.PositiveInfinity);
            return true;
        }

        // digits [. digits] | . digits, then optional exponent
        int i = 0;
        int intDigits = 0;
        while (i < body.Length && char.IsAsciiDigit(body[i]))
        {
            i++;
            intDigits++;
        }

        int fracDigits = 0;
        if (i < body.Length && body[i] == '.')
        {
            i++;
            while (i < body.Length && char.IsAsciiDigit(body[i]))
            {
                i++;
                fracDigits++;
            }
        }

        if (intDigits + fracDigits == 0)
        {
            return false;
        }

        if (i < body.Length && (body[i] == 'e' || body[i] == 'E'))
        {
            i++;
            if (i < body.Length && (body[i] == '+' || body[i] == '-'))
            {
                i++;
            }

            int expDigits = 0;
            while (i < body.Length && char.IsAsciiDigit(body[i]))
            {
                i++;
                expDigits++;
            }

            if (expDigits == 0)
            {
                return false;
            }
        }

        if (i != body.Length)
        {
            return false;
        }

        value = double.Parse(t, NumberStyles.Float, CultureInfo.InvariantCulture);
        return true;
    }
}
