using System.Text.Json;
using System.Text.Json.Serialization;

namespace LoraShell.Bench;

/// <summary>One scenario run: named numbers plus the settings they were measured under.</summary>
sealed class BenchResult
{
    public required string Scenario { get; init; }
    public Dictionary<string, double> Metrics { get; } = new();
    public Dictionary<string, string> Settings { get; } = new();

    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals });
}
