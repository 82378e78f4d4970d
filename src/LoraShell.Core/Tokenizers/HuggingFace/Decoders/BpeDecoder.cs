
namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>BPEDecoder: the end-of-word suffix becomes a space, except in the last token.</summary>
internal sealed class BpeDecoder(string suffix) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            result.Add(suffix.Length == 0 ? tokens[i] : tokens[i].Replace(suffix, i == tokens.Count - 1 ? string.Empty : " "));
        }
        return result;
    }
}
