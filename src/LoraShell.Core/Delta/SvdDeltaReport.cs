namespace LoraShell.Core.Delta;

/// <summary>What happened to one tensor of the checkpoint pair.</summary>
public enum DeltaStatus
{
    /// <summary>A matrix whose delta was factorised.</summary>
    Compressed,
    /// <summary>A matrix whose delta is exactly zero: rank 0, nothing stored.</summary>
    ZeroDelta,
    /// <summary>Not a target matrix (norm, bias, embedding, head…); its delta is reported, and stored exactly with IncludeNonMatrix.</summary>
    NonMatrix,
    /// <summary>Present on one side only (with SkipMissing).</summary>
    Missing,
}

/// <summary>One tensor's outcome (Invoke-SvdDelta writes one per tensor as it finishes).</summary>
public sealed record SvdDeltaReport
{
    public required string Name { get; init; }
    public required DeltaStatus Status { get; init; }
    public long[] Shape { get; init; } = Array.Empty<long>();
    public int Rank { get; init; }
    /// <summary>‖ΔW − B·A‖_F / ‖ΔW‖_F, measured.</summary>
    public double RelativeError { get; init; }
    /// <summary>√(Σ_{i>r} σ_i²)/‖ΔW‖_F from the exact spectrum (Eckart–Young); null for the randomized method.</summary>
    public double? OptimalError { get; init; }
    /// <summary>Σ_{i≤r} σ_i² / ‖ΔW‖_F².</summary>
    public double EnergyKept { get; init; }
    public double DeltaNorm { get; init; }
    public double MaxAbsDelta { get; init; }
    /// <summary>Bytes of the dense delta in float32 (m·n·4).</summary>
    public long BytesBefore { get; init; }
    /// <summary>Bytes stored for it: r·(m + n)·4, or the exact tensor with IncludeNonMatrix.</summary>
    public long BytesAfter { get; init; }
    public double Seconds { get; init; }
    public string Method { get; init; } = "";
    /// <summary>Leading singular values (up to 512), for spectrum charts.</summary>
    public double[] Spectrum { get; init; } = Array.Empty<double>();
    public bool StoredExactly { get; init; }
}

/// <summary>The run as a whole.</summary>
public sealed record SvdDeltaSummary
{
    public int Matrices { get; init; }
    public int ZeroDeltas { get; init; }
    public int NonMatrixChanged { get; init; }
    public int Missing { get; init; }
    public long BytesBefore { get; init; }
    public long BytesAfter { get; init; }
    public double CompressionRatio => BytesAfter == 0 ? 0 : (double)BytesBefore / BytesAfter;
    public double WorstRelativeError { get; init; }
    public string? WorstMatrix { get; init; }
    public int MaxRank { get; init; }
    public string? OutputPath { get; init; }
    public long AdapterFileBytes { get; init; }
    public double Seconds { get; init; }
    public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();
}
