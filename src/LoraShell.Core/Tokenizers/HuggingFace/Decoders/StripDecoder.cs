using System.Text;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>Strip: per token, removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> characters.</summary>
internal sealed class StripDecoder(int content, int start, int stop) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        foreach (var token in tokens)
        {
            var chars = new List<int>(token.Length);
            for (int i = 0; i < token.Length;)
            {
                chars.Add(UnicodeProps.CodePointAt(token, i, out int len));
                i += len;
            }
            int startCut = 0;
            for (int i = 0; i < Math.Min(start, chars.Count); i++)
            {
                if (chars[i] == content) startCut = i + 1;
                else break;
            }
            int stopCut = chars.Count;
            for (int i = 0; i < stop; i++)
            {
                int index = chars.Count - i - 1;
                if (index < 0) break;
                if (chars[index] == content) stopCut = index;
                else break;
            }
            var sb = new StringBuilder();
            for (int i = startCut; i < stopCut; i++) UnicodeProps.AppendCodePoint(sb, chars[i]);
            result.Add(sb.ToString());
        }
        return result;
    }
}
