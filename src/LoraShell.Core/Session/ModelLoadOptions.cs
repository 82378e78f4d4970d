using LoraShell.Core.Models;

namespace LoraShell.Core.Session;

/// <summary>Options for <see cref="ModelLoader.Load"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>A llama2.c <c>.bin</c> checkpoint or a Hugging Face folder.</summary>
    public required string Path { get; init; }
    /// <summary>Tokenizer file; when null, the one beside the model is used if there is one.</summary>
    public string? TokenizerPath { get; init; }
    public string Device { get; init; } = "cpu";
    public ModelDType DType { get; init; } = ModelDType.Float32;
}
