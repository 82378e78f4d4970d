namespace LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;

/// <summary>RobertaProcessing: optional offset trimming, then <c>cls $A sep</c>.</summary>
internal sealed class RobertaPostProcessor((string Token, int Id) cls, (string Token, int Id) sep, bool trimOffsets, bool addPrefixSpace)
    : IPostProcessor
{
    public void Process(EncodingBuilder encoding, bool addSpecialTokens)
    {
        if (trimOffsets) OffsetTrimmer.Trim(encoding, addPrefixSpace);
        if (!addSpecialTokens) return;
        encoding.Insert(0, cls.Id, cls.Token);
        encoding.Insert(encoding.Count, sep.Id, sep.Token);
    }
}
