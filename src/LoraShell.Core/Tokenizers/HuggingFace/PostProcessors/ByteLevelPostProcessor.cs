namespace LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;

/// <summary>ByteLevel as a post-processor adds no token; it only trims offsets when <c>trim_offsets</c> is set.</summary>
internal sealed class ByteLevelPostProcessor(bool trimOffsets, bool addPrefixSpace) : IPostProcessor
{
    public void Process(EncodingBuilder encoding, bool addSpecialTokens)
    {
        if (trimOffsets) OffsetTrimmer.Trim(encoding, addPrefixSpace);
    }
}
