namespace LoraShell.Core.Delta;

public enum SvdMethod { Exact, Randomized }

/// <summary>Settings of one Invoke-SvdDelta run.</summary>
public sealed record SvdDeltaOptions
{
    /// <summary>HF folder (single or sharded) or a .safetensors file.</summary>
    public required string BasePath { get; init; }
    public required string FineTunedPath { get; init; }
    public required string OutputPath { get; init; }
    public required RankPolicy Policy { get; init; }
    public SvdMethod Method { get; init; } = SvdMethod.Exact;
    /// <summary>Exact SVD in float64 instead of float32.</summary>
    public bool Float64 { get; init; }
    /// <summary>Module names or a regex (as Add-LoraAdapter's); null: every 2-D weight except embeddings and the output head.</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }
    public bool SkipMissing { get; init; }
    /// <summary>Store changed non-matrix tensors exactly, via modules_to_save.</summary>
    public bool IncludeNonMatrix { get; init; }
    /// <summary>One rank for every module (factors zero-padded to the largest), alpha = r, no patterns: for tools that ignore rank_pattern.</summary>
    public bool UniformRank { get; init; }
    public bool Overwrite { get; init; }
    public long Seed { get; init; }
    public int Oversample { get; init; } = 10;
    public int PowerIterations { get; init; } = 2;
    /// <summary>Sketch size of the randomized method under the adaptive policies when MaxRank is not given.</summary>
    public int DefaultSketchRank { get; init; } = 256;
    public string? BaseModelNameOrPath { get; init; }
}
