namespace LoraShell.Core.Tokenizers.HuggingFace;

/// <summary>One entry of tokenizer.json's <c>added_tokens</c>, with the id the tokenizer actually gives it.</summary>
public sealed record AddedToken(
    int Id,
    string Content,
    bool Special,
    bool SingleWord,
    bool LStrip,
    bool RStrip,
    bool Normalized);
