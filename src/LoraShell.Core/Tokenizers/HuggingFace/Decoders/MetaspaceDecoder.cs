using System.Text;
using LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>
/// Metaspace: the replacement character becomes a space, except that in the first token (after special-token
/// filtering) every replacement character is dropped unless the prepend scheme is "never".
/// </summary>
internal sealed class MetaspaceDecoder(int replacement, PrependScheme scheme) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int t = 0; t < tokens.Count; t++)
        {
            string token = tokens[t];
            var sb = new StringBuilder(token.Length);
            for (int i = 0; i < token.Length;)
            {
                int cp = UnicodeProps.CodePointAt(token, i, out int len);
                if (cp == replacement)
                {
                    if (!(t == 0 && scheme != PrependScheme.Never)) sb.Append(' ');
                }
                else sb.Append(token, i, len);
                i += len;
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}
