namespace LoraShell.Core.Models;

/// <summary>A config's <c>rope_scaling</c>: the type and the numbers that type reads.</summary>
public sealed record RopeScaling
{
    public const string Linear = "linear";
    public const string Dynamic = "dynamic";
    public const string Llama3 = "llama3";
    public static readonly IReadOnlyList<string> Supported = new[] { Linear, Dynamic, Llama3 };

    public required string Type { get; init; }
    public double Factor { get; init; } = 1;
    public double LowFreqFactor { get; init; } = 1;
    public double HighFreqFactor { get; init; } = 4;
    public int OriginalMaxPositionEmbeddings { get; init; } = 8192;
}
