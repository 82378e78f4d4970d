
namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>Fuse: all tokens into one string.</summary>
internal sealed class FuseDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}
