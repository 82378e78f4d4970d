using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

/// <summary>
/// ByteLevel: optionally prepends a space, optionally splits with GPT-2's regex, then rewrites every piece as its
/// UTF-8 bytes mapped through <see cref="ByteLevelAlphabet"/>. Each byte character of a multi-byte character keeps
/// that character's whole original span (the first byte replaces it, the others are insertions).
/// </summary>
internal sealed class ByteLevelPreTokenizer : IPreTokenizer
{
    /// <summary>The crate's built-in GPT-2 split regex (Oniguruma; <c>\s</c> is Unicode White_Space, as in .NET).</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Lazy<RegexPattern> s_gpt2 = new(() =>
        new RegexPattern(CodePointRegex.Create(Gpt2Pattern, "pre_tokenizer.type = ByteLevel", "ByteLevel")));

    private readonly bool _addPrefixSpace;
    private readonly bool _useRegex;

    public ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex)
    {
        _addPrefixSpace = addPrefixSpace;
        _useRegex = useRegex;
        if (useRegex) _ = s_gpt2.Value;
    }

    public void PreTokenize(NormalizedString piece, Action<NormalizedString> emit)
    {
        if (_addPrefixSpace && !piece.Normalized.StartsWith(' ')) piece.Prepend(" ");
        if (_useRegex)
        {
            piece.Split(s_gpt2.Value, SplitBehavior.Isolated, false, part =>
            {
                if (part.IsEmpty) return;
                ToByteLevel(part);
                emit(part);
            });
        }
        else
        {
            ToByteLevel(piece);
            emit(piece);
        }
    }

    internal static void ToByteLevel(NormalizedString piece)
    {
        string s = piece.Normalized;
        var map = ByteLevelAlphabet.ByteToChar;
        if (!s.AsSpan().ContainsAnyExceptInRange('\0', '\u007F'))
        {
            // ASCII: one byte per character, so the rewrite is one-for-one and alignments do not move.
            piece.ReplaceSameShape(string.Create(s.Length, s, static (dst, src) =>
            {
                var m = ByteLevelAlphabet.ByteToChar;
                for (int i = 0; i < src.Length; i++) dst[i] = m[src[i]];
            }));
            return;
        }
        var dest = new ChangeBuffer(s.Length * 2);
        Span<byte> bytes = stackalloc byte[4];
        for (int i = 0; i < s.Length;)
        {
            int cp = UnicodeProps.CodePointAt(s, i, out int len);
            i += len;
            int n = EncodeUtf8(cp, bytes);
            for (int b = 0; b < n; b++) dest.Add(map[bytes[b]], b > 0 ? 1 : 0);
        }
        piece.ApplyTransform(dest, 0);
    }

    /// <summary>UTF-8 of a code point; a lone surrogate is encoded as U+FFFD, as Rust strings cannot hold one.</summary>
    internal static int EncodeUtf8(int cp, Span<byte> bytes)
    {
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        if (cp < 0x80) { bytes[0] = (byte)cp; return 1; }
        if (cp < 0x800)
        {
            bytes[0] = (byte)(0xC0 | (cp >> 6));
            bytes[1] = (byte)(0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000)
        {
            bytes[0] = (byte)(0xE0 | (cp >> 12));
            bytes[1] = (byte)(0x80 | ((cp >> 6) & 0x3F));
            bytes[2] = (byte)(0x80 | (cp & 0x3F));
            return 3;
        }
        bytes[0] = (byte)(0xF0 | (cp >> 18));
        bytes[1] = (byte)(0x80 | ((cp >> 12) & 0x3F));
        bytes[2] = (byte)(0x80 | ((cp >> 6) & 0x3F));
        bytes[3] = (byte)(0x80 | (cp & 0x3F));
        return 4;
    }
}
