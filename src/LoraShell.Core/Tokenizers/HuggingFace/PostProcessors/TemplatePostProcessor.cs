namespace LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;

/// <summary>One piece of a template: the sequence ($A) or a special token (its ids and token strings).</summary>
internal sealed record TemplatePiece(bool IsSequence, int[] Ids, string[] Tokens);

/// <summary>TemplateProcessing, single template: special tokens around <c>$A</c>, only when adding special tokens.</summary>
internal sealed class TemplatePostProcessor(IReadOnlyList<TemplatePiece> single) : IPostProcessor
{
    public void Process(EncodingBuilder encoding, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return;
        int sequenceCount = encoding.Count;
        int position = 0; // where the next special token goes
        bool sequenceSeen = false;
        foreach (var piece in single)
        {
            if (piece.IsSequence)
            {
                if (sequenceSeen) throw new InvalidOperationException("template uses $A twice");
                sequenceSeen = true;
                position += sequenceCount;
                continue;
            }
            for (int i = 0; i < piece.Ids.Length; i++) encoding.Insert(position++, piece.Ids[i], piece.Tokens[i]);
        }
    }
}
