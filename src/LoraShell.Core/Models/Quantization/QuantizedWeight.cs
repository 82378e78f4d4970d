using static TorchSharp.torch;

namespace LoraShell.Core.Models.Quantization;

/// <summary>
/// One weight matrix [out, in] in a quantized form: what it takes in memory and how to get the matrix
/// back. Dequantization is exact arithmetic on the stored codes, so the same matrix comes back on every
/// call (forward, backward, merge).
/// </summary>
public abstract class QuantizedWeight : IDisposable
{
    protected QuantizedWeight(long outFeatures, long inFeatures)
    {
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
    }

    public long OutFeatures { get; }
    public long InFeatures { get; }
    public long Count => OutFeatures * InFeatures;

    public abstract BaseQuantization Kind { get; }

    /// <summary>Bytes held (codes and statistics).</summary>
    public abstract long Bytes { get; }

    public abstract Device Device { get; }

    /// <summary>The matrix [out, in] in <paramref name="dtype"/> (computed in float32, then cast).</summary>
    public abstract Tensor Dequantize(ScalarType dtype);

    /// <summary>The same codes on another device.</summary>
    public abstract void MoveTo(Device device);

    /// <summary>What a matrix in <paramref name="kind"/> costs, as that weight type states it; null for dense weights.</summary>
    public static QuantizedWeightCost? CostOf(BaseQuantization kind) => kind switch
    {
        BaseQuantization.Nf4 => Nf4Weight.Cost,
        BaseQuantization.Int8 => Int8Weight.Cost,
        _ => null,
    };

    public static QuantizedWeight Quantize(Tensor outIn, BaseQuantization kind, bool doubleQuant) => kind switch
    {
        BaseQuantization.Nf4 => Nf4Weight.Quantize(outIn, doubleQuant),
        BaseQuantization.Int8 => Int8Weight.Quantize(outIn),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a quantized format"),
    };

    public abstract void Dispose();
}
