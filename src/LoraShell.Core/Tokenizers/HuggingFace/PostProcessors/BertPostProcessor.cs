namespace LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;

/// <summary>BertProcessing: <c>cls $A sep</c>.</summary>
internal sealed class BertPostProcessor((string Token, int Id) cls, (string Token, int Id) sep) : IPostProcessor
{
    public void Process(EncodingBuilder encoding, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return;
        encoding.Insert(0, cls.Id, cls.Token);
        encoding.Insert(encoding.Count, sep.Id, sep.Token);
    }
}
