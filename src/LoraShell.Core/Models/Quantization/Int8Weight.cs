using static TorchSharp.torch;

namespace LoraShell.Core.Models.Quantization;

/// <summary>
/// Weight-only int8 by output row (LLM.int8's vector-wise weight quantization without the outlier
/// split): scale = absmax(row) / 127, q = round(w / scale) in [-127, 127], w ≈ q · scale. A row of zeros
/// has scale 0 and stays zero.
/// </summary>
public sealed class Int8Weight : QuantizedWeight
{
    Tensor _codes, _scales; // int8 [out, in], float32 [out, 1]

    Int8Weight(Tensor codes, Tensor scales) : base(codes.shape[0], codes.shape[1])
    {
        // Held for the model's lifetime: out of whatever dispose scope built them.
        _codes = codes.DetachFromDisposeScope();
        _scales = scales.DetachFromDisposeScope();
    }

    public override BaseQuantization Kind => BaseQuantization.Int8;

    /// <summary>A code byte per weight and a float32 scale per row; dequantizing makes the float32 matrix.</summary>
    public static readonly QuantizedWeightCost Cost = new((outFeatures, inFeatures, _) => outFeatures * inFeatures + 4 * outFeatures, DequantizationBytesPerWeight: 4);
    public override long Bytes => _codes.numel() + 4 * _scales.numel();
    public override Device Device => _codes.device;

    public static Int8Weight Quantize(Tensor outIn)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var w = outIn.detach().to(ScalarType.Float32);
        var scales = w.abs().amax(new long[] { 1 }, keepdim: true) / 127.0;
        // round(w / scale) with scale 0 (an all-zero row) is 0/0: those rows quantize to 0.
        var codes = where(scales.eq(0), zeros_like(w), (w / scales).round()).clamp(-127, 127).to(ScalarType.Int8);
        return new Int8Weight(codes.MoveToOuterDisposeScope(), scales.MoveToOuterDisposeScope());
    }

    public override Tensor Dequantize(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var w = _codes.to(ScalarType.Float32);
        w.mul_(_scales); // in place: one float32 copy of the matrix, not two
        return w.to(dtype).MoveToOuterDisposeScope();
    }

    public override void MoveTo(Device device)
    {
        if (device.Equals(Device)) return;
        var (codes, scales) = (_codes.to(device).DetachFromDisposeScope(), _scales.to(device).DetachFromDisposeScope());
        _codes.Dispose(); _scales.Dispose();
        (_codes, _scales) = (codes, scales);
    }

    public override void Dispose() { _codes.Dispose(); _scales.Dispose(); }
}
