namespace LoraShell;

/// <summary>One token of a text (ConvertTo-LoraToken; type name LoraShell.TokenInfo).</summary>
public sealed class TokenInfo
{
    /// <summary>Position of the token in the sequence.</summary>
    public int Index { get; init; }
    public int Id { get; init; }
    /// <summary>The token as the vocabulary spells it (byte-level tokens show Ġ for a space, SentencePiece ▁).</summary>
    public required string Token { get; init; }
    /// <summary>The span of the input text it covers: [Start, End) in .NET string indices (empty for added special tokens).</summary>
    public int Start { get; init; }
    public int End { get; init; }
    /// <summary>The covered text itself.</summary>
    public required string Text { get; init; }
    /// <summary>A special token (BOS, EOS, a chat marker).</summary>
    public bool Special { get; init; }
    public override string ToString() => $"{Id} {Token}";
}
