namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>One split of the input: a normalized piece, or an added token already recognised in the text.</summary>
internal sealed class Split
{
    public Split(NormalizedString normalized, int tokenId = -1)
    {
        Normalized = normalized;
        TokenId = tokenId;
    }

    public NormalizedString Normalized { get; }

    /// <summary>The added token's id when this split is an added token; -1 otherwise.</summary>
    public int TokenId { get; }

    public bool HasToken => TokenId >= 0;
}

/// <summary>
/// The crate's <c>PreTokenizedString</c>: the input as an ordered list of splits. Splitting only touches splits that
/// are not tokens yet, and drops pieces whose normalized text is empty.
/// </summary>
internal sealed class PreTokenizedString
{
    public PreTokenizedString(string original)
    {
        Original = original;
        Splits = new List<Split> { new(new NormalizedString(original)) };
    }

    public string Original { get; }

    public List<Split> Splits { get; private set; }

    public delegate void TokenSplitFunction(NormalizedString piece, List<Split> output);

    /// <summary>Applies <paramref name="split"/> to every split that is not a token yet; empty pieces are dropped.</summary>
    public void SplitWithTokens(TokenSplitFunction split)
    {
        var result = new List<Split>(Splits.Count + 8);
        var produced = new List<Split>();
        foreach (var s in Splits)
        {
            if (s.HasToken)
            {
                result.Add(s);
                continue;
            }
            produced.Clear();
            split(s.Normalized, produced);
            foreach (var piece in produced)
            {
                if (!piece.Normalized.IsEmpty) result.Add(piece);
            }
        }
        Splits = result;
    }
}
