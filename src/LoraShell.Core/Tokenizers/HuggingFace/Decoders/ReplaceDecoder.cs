using System.Text;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>Replace: per token, every match of the pattern becomes <c>content</c>.</summary>
internal sealed class ReplaceDecoder(SplitPattern pattern, string content) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var spans = new List<MatchSpan>();
        foreach (var token in tokens)
        {
            spans.Clear();
            pattern.FindMatches(token, spans);
            var sb = new StringBuilder(token.Length);
            foreach (var s in spans)
            {
                if (s.IsMatch) sb.Append(content);
                else sb.Append(token, s.Start, s.End - s.Start);
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}
