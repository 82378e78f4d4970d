using System.Text;
using LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;

namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>
/// ByteLevel: maps every token's characters back to bytes (a token with a character outside the byte alphabet is
/// taken as its own UTF-8) and decodes all bytes at once, lossily: one U+FFFD per maximal invalid sequence, which is
/// what both Rust's <c>from_utf8_lossy</c> and .NET's UTF-8 decoder do.
/// </summary>
internal sealed class ByteLevelDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            bool allMapped = true;
            foreach (char c in token)
            {
                if (ByteLevelAlphabet.ByteOf(c) < 0) { allMapped = false; break; }
            }
            if (allMapped)
            {
                foreach (char c in token) bytes.Add((byte)ByteLevelAlphabet.ByteOf(c));
            }
            else bytes.AddRange(Encoding.UTF8.GetBytes(token));
        }
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}
