using System.Globalization;
using System.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>
/// ByteFallback: consecutive <c>&lt;0xNN&gt;</c> tokens are gathered into bytes. A run that is valid UTF-8 as a whole
/// becomes its text; otherwise the crate emits one U+FFFD per byte token of the run (even for complete characters
/// inside the run) — reproduced here exactly.
/// </summary>
internal sealed class ByteFallbackDecoder : IDecoder
{
    private static readonly UTF8Encoding s_strict = new(false, true);

    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (TryParseByte(token, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        return result;
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0) return;
        try
        {
            result.Add(s_strict.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD");
        }
        pending.Clear();
    }

    /// <summary>The crate's test: 6 bytes long, starts with "&lt;0x", ends with "&gt;", two hex digits (u8::from_str_radix).</summary>
    private static bool TryParseByte(string token, out byte value)
    {
        value = 0;
        if (token.Length != 6 || !token.StartsWith("<0x", StringComparison.Ordinal) || token[5] != '>') return false;
        var hex = token.AsSpan(3, 2);
        if (hex[0] == '+') return byte.TryParse(hex[1..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
        return byte.TryParse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }
}
