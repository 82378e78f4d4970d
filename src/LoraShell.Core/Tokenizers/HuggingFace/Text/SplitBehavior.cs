namespace LoraShell.Core.Tokenizers.HuggingFace.Text;

/// <summary>What happens to the delimiter when splitting (the crate's <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}
