namespace LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;

/// <summary>A tokenizer.json <c>post_processor</c> (single sequence only: pair encoding is not part of the API).</summary>
internal interface IPostProcessor
{
    void Process(EncodingBuilder encoding, bool addSpecialTokens);
}

internal sealed class SequencePostProcessor(IReadOnlyList<IPostProcessor> processors) : IPostProcessor
{
    public void Process(EncodingBuilder encoding, bool addSpecialTokens)
    {
        foreach (var p in processors) p.Process(encoding, addSpecialTokens);
    }
}
