namespace LoraShell;

/// <summary>Output of Measure-LoraPerplexity (type name LoraShell.PerplexityReport).</summary>
public sealed class PerplexityReport
{
    public required string Model { get; init; }
    public required string Source { get; init; }
    public double Loss { get; init; }
    public double Perplexity { get; init; }
    public long Tokens { get; init; }
    public int Windows { get; init; }
    public double Seconds { get; init; }
}
