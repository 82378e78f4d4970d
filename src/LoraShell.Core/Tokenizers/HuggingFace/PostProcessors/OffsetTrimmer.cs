using LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;

/// <summary>
/// The crate's <c>process_offsets</c> (ByteLevel/Roberta <c>trim_offsets</c>): offsets lose the leading and trailing
/// spaces their token holds (Ġ or whitespace). The crate counts in code points; here the same counts are walked
/// over the text in UTF-16.
/// </summary>
internal static class OffsetTrimmer
{
    private static readonly char SpaceChar = ByteLevelAlphabet.ByteToChar[' '];

    public static void Trim(EncodingBuilder encoding, bool addPrefixSpace)
    {
        if (!encoding.WithDetails) return;
        var tokens = encoding.Tokens!;
        var offsets = encoding.Offsets!;
        string text = encoding.Text;
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            var (start, end) = offsets[i];
            int leading = 0;
            for (int k = 0; k < token.Length;)
            {
                int cp = UnicodeProps.CodePointAt(token, k, out int len);
                if (cp != SpaceChar && !UnicodeProps.IsWhiteSpace(cp)) break;
                leading++;
                k += len;
            }
            int trailing = 0;
            for (int k = token.Length; k > 0;)
            {
                int at = UnicodeProps.CharStart(token, k - 1);
                int cp = UnicodeProps.CodePointAt(token, at, out _);
                if (cp != SpaceChar && !UnicodeProps.IsWhiteSpace(cp)) break;
                trailing++;
                k = at;
            }
            if (leading == 0 && trailing == 0) continue;
            if (leading > 0)
            {
                bool isFirst = i == 0 || start == 0;
                if (isFirst && addPrefixSpace && leading == 1) leading = 0;
                start = Math.Min(Advance(text, start, leading), end);
            }
            if (trailing > 0 && CodePointCountAtLeast(text, end, trailing))
            {
                end = Math.Max(Retreat(text, end, trailing), start);
            }
            offsets[i] = (start, end);
        }
    }

    private static int Advance(string text, int pos, int count)
    {
        for (int k = 0; k < count; k++)
        {
            if (pos >= text.Length) return pos + (count - k);
            pos += NormalizedString.CharLength(text, pos);
        }
        return pos;
    }

    private static int Retreat(string text, int pos, int count)
    {
        for (int k = 0; k < count && pos > 0; k++)
        {
            pos--;
            if (pos < text.Length) pos = UnicodeProps.CharStart(text, pos);
        }
        return pos;
    }

    private static bool CodePointCountAtLeast(string text, int end, int count)
    {
        if (end >= 2 * count) return true;
        int n = 0;
        for (int i = 0; i < end && i < text.Length; i += NormalizedString.CharLength(text, i)) n++;
        return n >= count;
    }
}
