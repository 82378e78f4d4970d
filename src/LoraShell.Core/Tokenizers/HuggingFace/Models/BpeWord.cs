namespace LoraShell.Core.Tokenizers.HuggingFace.Models;

/// <summary>
/// The BPE result for one pre-token: token ids and, per token, its length in UTF-8 bytes of the pre-token. The
/// crate computes token offsets as running sums of these byte lengths, so they are kept in bytes (this is also what
/// makes a byte-fallback token map onto the whole character it is part of).
/// </summary>
internal sealed class BpeWord
{
    public BpeWord(int[] ids, int[] byteLengths, string? singleToken = null)
    {
        Ids = ids;
        ByteLengths = byteLengths;
        SingleToken = singleToken;
    }

    public int[] Ids { get; }

    public int[] ByteLengths { get; }

    /// <summary>Set when <c>ignore_merges</c> matched the whole pre-token: the crate then uses it as the token string.</summary>
    public string? SingleToken { get; }
}
