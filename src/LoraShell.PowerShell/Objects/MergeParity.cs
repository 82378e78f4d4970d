namespace LoraShell;

/// <summary>How far merged logits are from the unmerged ones on a fixed sample (after Merge-LoraWeights).</summary>
public sealed class MergeParity
{
    public required string[] Adapters { get; init; }
    public double MaxAbsDifference { get; init; }
    public double MeanAbsDifference { get; init; }
    public double MaxAbsLogit { get; init; }
    public int SampleTokens { get; init; }
    public double Relative => MaxAbsLogit == 0 ? 0 : MaxAbsDifference / MaxAbsLogit;
}
