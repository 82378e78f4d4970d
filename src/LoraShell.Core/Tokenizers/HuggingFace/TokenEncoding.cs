namespace LoraShell.Core.Tokenizers.HuggingFace;

/// <summary>
/// The result of <see cref="HuggingFaceTokenizer.Encode"/>: the same fields as the Rust crate's <c>Encoding</c>
/// (ids, tokens, offsets, special_tokens_mask). Offsets are <c>[Start, End)</c> UTF-16 indices into the text
/// that was encoded; tokens inserted by the post-processor have <c>(0, 0)</c>.
/// </summary>
public sealed class TokenEncoding
{
    internal TokenEncoding(int[] ids, string[] tokens, (int Start, int End)[] offsets, int[] specialTokensMask)
    {
        Ids = ids;
        Tokens = tokens;
        Offsets = offsets;
        SpecialTokensMask = specialTokensMask;
    }

    public IReadOnlyList<int> Ids { get; }
    public IReadOnlyList<string> Tokens { get; }
    public IReadOnlyList<(int Start, int End)> Offsets { get; }

    /// <summary>1 for tokens the post-processor inserted (e.g. BOS); added tokens found in the text are 0.</summary>
    public IReadOnlyList<int> SpecialTokensMask { get; }

    public int Count => Ids.Count;
}
