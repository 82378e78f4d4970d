using System.Text;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>
/// Seeded random strings that stress tokenizers: mixed scripts, combining marks, emoji sequences, astral letters and
/// digits, odd whitespace, digit runs, contractions and (partial) special-token strings. No U+0000 and no lone
/// surrogates: the native oracle receives the text as a C string in UTF-8.
/// </summary>
internal static class RandomText
{
    private static readonly string[] Words =
        ["the", "Hello", "world", "tokenizer", "ünïcödé", "naïve", "café", "Straße", "İstanbul", "ΣΊΣΥΦΟΣ", "Москва", "日本語", "中文字符",
         "한국어", "العربية", "हिन्दी", "ภาษาไทย", "שלום", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀀𠀁", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "½", "²", "Ⅳ", "１２３",
         "٣٤٥", "𝟙𝟚𝟛", "𐐀𐐨", "🄰🄱", "ﬁ", "①", "Ａ", "e\u0301", "A\u030A", "\u212B", "\u1100\u1161\u11A8", "a\u0323\u0301", "x\u0301\u0316\u0308",
         "don't", "I'm", "we'll", "they've", "'s", "'T", "'ſ", "'\u212A", "'LL", "https://example.com/a?b=c", "user@mail.org", "C:\\path\\file.txt",
         "{\"k\": [1, 2.5, null]}", "def f(x):", "int main() {", "    ", "\t\t", "\r\n", "\n\n\n", "...", "?!", "--", "***", "(", ")", "«»", "„“"];

    private static readonly string[] Spaces =
        [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00A0", "\u3000", "\u0085", "\u2028", "\uFEFF", "\u180E", "\u001F", "\u200B", "\u2009", " \n "];

    public static List<string> Generate(int seed, int count, IReadOnlyList<string> specialTokens)
    {
        var rng = new Random(seed);
        var list = new List<string>(count);
        for (int i = 0; i < count; i++) list.Add(One(rng, specialTokens));
        return list;
    }

    private static string One(Random rng, IReadOnlyList<string> specials)
    {
        var sb = new StringBuilder();
        int parts = rng.Next(1, 16);
        for (int p = 0; p < parts; p++)
        {
            switch (rng.Next(14))
            {
                case 0:
                case 1:
                case 2:
                    sb.Append(Words[rng.Next(Words.Length)]);
                    break;
                case 3:
                case 4:
                    sb.Append(Spaces[rng.Next(Spaces.Length)]);
                    break;
                case 5:
                    sb.Append(rng.Next(0, 1_000_000_000).ToString());
                    if (rng.Next(3) == 0) sb.Append('.').Append(rng.Next(1000));
                    break;
                case 6:
                    for (int k = rng.Next(1, 6); k > 0; k--) sb.Append("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"[rng.Next(32)]);
                    break;
                case 7:
                    if (specials.Count > 0)
                    {
                        string s = specials[rng.Next(specials.Count)];
                        // Sometimes only part of it, to exercise partial matches.
                        sb.Append(rng.Next(4) == 0 ? s[..Math.Max(1, rng.Next(s.Length))] : s);
                    }
                    break;
                case 8:
                    AppendRandom(sb, rng, 0x20, 0x2FF); // Latin, Latin-1, IPA
                    break;
                case 9:
                    AppendRandom(sb, rng, 0x300, 0x36F); // combining marks
                    break;
                case 10:
                    AppendRandom(sb, rng, 0x370, 0xFFFD); // anywhere in the BMP
                    break;
                case 11:
                    AppendRandom(sb, rng, 0x10000, 0x1FFFF); // SMP: letters, digits, emoji, unassigned
                    break;
                case 12:
                    AppendRandom(sb, rng, 0x20000, 0x2FFFF); // CJK extensions
                    break;
                default:
                    for (int k = rng.Next(1, 8); k > 0; k--) sb.Append((char)rng.Next('a', 'z' + 1));
                    break;
            }
        }
        return sb.ToString();
    }

    private static void AppendRandom(StringBuilder sb, Random rng, int from, int to)
    {
        int n = rng.Next(1, 4);
        for (int k = 0; k < n; k++)
        {
            int cp;
            do cp = rng.Next(from, to + 1);
            while (cp is >= 0xD800 and <= 0xDFFF);
            sb.Append(char.ConvertFromUtf32(cp));
        }
    }
}
