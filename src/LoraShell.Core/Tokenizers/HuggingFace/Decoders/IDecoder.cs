namespace LoraShell.Core.Tokenizers.HuggingFace.Decoders;

/// <summary>A tokenizer.json <c>decoder</c>: the crate's <c>decode_chain</c>, tokens in, strings out (joined at the end).</summary>
internal interface IDecoder
{
    List<string> DecodeChain(List<string> tokens);
}

internal sealed class SequenceDecoder(IReadOnlyList<IDecoder> decoders) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        foreach (var d in decoders) tokens = d.DecodeChain(tokens);
        return tokens;
    }
}
