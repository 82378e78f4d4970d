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
    /// <summary>Store the decoder's projections quantized (QLoRA's base); embeddings, norms and the head stay in <see cref="DType"/>.</summary>
    public Models.Quantization.BaseQuantization Quantization { get; init; }
    /// <summary>NF4 only: quantize the per-block statistics too.</summary>
    public bool DoubleQuant { get; init; }
    /// <summary>
    /// How the user named the model (the path as typed, relative or not), recorded in adapters as
    /// base_model_name_or_path when the model's config.json names no hub id; default <see cref="Path"/>.
    /// </summary>
    public string? NameOrPath { get; init; }
}
