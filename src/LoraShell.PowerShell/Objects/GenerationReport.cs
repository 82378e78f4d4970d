namespace LoraShell;

/// <summary>Invoke-LoraGeneration -Detailed output (type name LoraShell.GenerationReport).</summary>
public sealed class GenerationReport
{
    public required string Text { get; init; }
    public required string Completion { get; init; }
    public int PromptTokens { get; init; }
    public int GeneratedTokens { get; init; }
    public required string StopReason { get; init; }
    public double Seconds { get; init; }
    public double TokensPerSecond { get; init; }
    public long? Seed { get; init; }
    public double Temperature { get; init; }
    public double TopP { get; init; }
    public override string ToString() => Text;
}
