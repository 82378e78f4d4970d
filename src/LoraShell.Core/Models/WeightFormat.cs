using LoraShell.Core.Models.Quantization;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// How a model holds its weights in memory: the float dtype of everything dense, whether the decoder's
/// projections are quantized (as transformers' bitsandbytes path does: embeddings, norms and the output
/// head stay dense), and whether new weights get nn's random initialisation (not when a checkpoint is
/// about to overwrite them: that would touch every page of memory for nothing).
/// </summary>
public sealed record WeightFormat
{
    public static readonly WeightFormat Default = new();

    public ScalarType DType { get; init; } = ScalarType.Float32;
    public BaseQuantization Quantization { get; init; } = BaseQuantization.None;
    /// <summary>NF4 only: quantize the per-block absmax values too (bitsandbytes' compress_statistics).</summary>
    public bool DoubleQuant { get; init; }
    public bool Initialize { get; init; } = true;

    public void Validate()
    {
        if (DType is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw LoraShellException.InvalidArgument("UnsupportedDType", $"Weights can be float32, bfloat16 or float16 (got {DType}).", DType);
        if (DoubleQuant && Quantization != BaseQuantization.Nf4)
            throw LoraShellException.InvalidArgument("DoubleQuantNeedsNf4", $"-DoubleQuant compresses NF4's block statistics; it has no meaning with -Quantization {Quantization}.", Quantization);
    }
}
