
namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>WordPiece: joins sub-words (prefix "##") and puts spaces before other tokens; optional clean-up.</summary>
internal sealed class WordPieceDecoder(string prefix, bool cleanup) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            if (i != 0)
            {
                if (token.StartsWith(prefix, StringComparison.Ordinal))
                {
                    int at = token.IndexOf(prefix, StringComparison.Ordinal);
                    token = token.Remove(at, prefix.Length);
                }
                else token = " " + token;
            }
            if (cleanup) token = Cleanup(token);
            result.Add(token);
        }
        return result;
    }

    internal static string Cleanup(string s) => s
        .Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",")
        .Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't")
        .Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");
}
