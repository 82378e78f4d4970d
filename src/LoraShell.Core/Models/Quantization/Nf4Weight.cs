using static TorchSharp.torch;

namespace LoraShell.Core.Models.Quantization;

/// <summary>
/// NF4 as bitsandbytes defines it (<c>quantize_4bit(quant_type="nf4", blocksize=64)</c>): the matrix
/// flattened row-major is cut into blocks of 64 consecutive weights (the last one padded with zeros), each
/// block scaled by the reciprocal of its absmax and every weight stored as the index of the nearest NF4
/// value, two to a byte, the first in the high nibble; w ≈ NF4[code] · absmax. With double
/// quantization (<c>compress_statistics=True</c>) the float32 absmax values lose their mean and are
/// themselves quantized to 8 bits with the dynamic map in blocks of 256, each with a float32 absmax.
/// </summary>
public sealed class Nf4Weight : QuantizedWeight
{
    public const int BlockSize = 64;
    public const int StatisticsBlockSize = 256;

    Tensor _packed;             // uint8 [blocks · 32]
    Tensor _absmax;             // float32 [blocks], or uint8 codes of (absmax - offset) when double-quantized
    Tensor? _absmaxScales;      // float32 [ceil(blocks / 256)] (double quantization)
    readonly float _offset;     // mean of the absmax values (double quantization)

    Nf4Weight(long outFeatures, long inFeatures, Tensor packed, Tensor absmax, Tensor? absmaxScales, float offset) : base(outFeatures, inFeatures)
    {
        // Held for the model's lifetime: out of whatever dispose scope built them.
        _packed = packed.DetachFromDisposeScope();
        _absmax = absmax.DetachFromDisposeScope();
        _absmaxScales = absmaxScales?.DetachFromDisposeScope();
        _offset = offset;
    }

    public override BaseQuantization Kind => BaseQuantization.Nf4;

    /// <summary>
    /// Half a byte per weight (blocks of 64, the last padded) and a float32 absmax per block, or with double
    /// quantization a byte per block and a float32 per 256 blocks; dequantizing makes a 2-byte lookup index
    /// and the float32 values per weight.
    /// </summary>
    public static readonly QuantizedWeightCost Cost = new((outFeatures, inFeatures, doubleQuant) =>
    {
        long blocks = (outFeatures * inFeatures + BlockSize - 1) / BlockSize;
        return blocks * (BlockSize / 2) + (doubleQuant ? blocks + 4 * ((blocks + StatisticsBlockSize - 1) / StatisticsBlockSize) : 4 * blocks);
    }, DequantizationBytesPerWeight: 2 + 4);
    public bool DoubleQuantized => _absmaxScales is not null;
    public override long Bytes => _packed.numel() + _absmax.numel() * _absmax.element_size() + (_absmaxScales?.numel() ?? 0) * 4;
    public override Device Device => _packed.device;

    /// <summary>Splits into rows of <paramref name="block"/> values, padding the last with zeros.</summary>
    static Tensor Blocks(Tensor flat, int block)
    {
        long pad = (block - flat.shape[0] % block) % block;
        return (pad == 0 ? flat : cat(new[] { flat, zeros(pad, dtype: flat.dtype, device: flat.device) })).view(-1, block);
    }

    /// <summary>absmax per row of <paramref name="blocks"/> and each value times its reciprocal (0 in an all-zero block).</summary>
    static (Tensor Absmax, Tensor Scaled) Normalise(Tensor blocks)
    {
        var absmax = blocks.abs().amax(new long[] { 1 });
        var reciprocal = where(absmax.eq(0), zeros_like(absmax), absmax.reciprocal());
        return (absmax, blocks * reciprocal.unsqueeze(1));
    }

    public static Nf4Weight Quantize(Tensor outIn, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var blocks = Blocks(outIn.detach().to(ScalarType.Float32).reshape(-1), BlockSize);
        var (absmax, scaled) = Normalise(blocks);
        var codes = Codebooks.Nearest(scaled, Codebooks.Nf4).to(ScalarType.Byte).view(-1, 2);
        var packed = codes[.., 0].bitwise_left_shift(4).bitwise_or(codes[.., 1]).contiguous();
        if (!doubleQuant)
            return new Nf4Weight(outIn.shape[0], outIn.shape[1], packed.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope(), null, 0);
        float offset = absmax.mean().item<float>();
        var (scales, scaledStats) = Normalise(Blocks(absmax - offset, StatisticsBlockSize));
        var statCodes = Codebooks.Nearest(scaledStats, Codebooks.Dynamic8Bit()).to(ScalarType.Byte).reshape(-1)[..(int)absmax.shape[0]].contiguous();
        return new Nf4Weight(outIn.shape[0], outIn.shape[1], packed.MoveToOuterDisposeScope(), statCodes.MoveToOuterDisposeScope(), scales.MoveToOuterDisposeScope(), offset);
    }

    /// <summary>The float32 absmax of every block (decoded first when double-quantized).</summary>
    public Tensor Absmax()
    {
        if (_absmaxScales is null) return _absmax.alias();
        using var scope = NewDisposeScope();
        using var map = tensor(Codebooks.Dynamic8Bit(), device: Device);
        var values = map.index_select(0, _absmax.to(ScalarType.Int64));
        long count = values.shape[0];
        var blocks = Blocks(values, StatisticsBlockSize) * _absmaxScales.unsqueeze(1);
        return (blocks.reshape(-1)[..(int)count] + _offset).MoveToOuterDisposeScope();
    }

    public override Tensor Dequantize(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        // One lookup per packed byte in a 256 x 2 table of (high, low) code values: 2 bytes of index per
        // weight instead of the 8 an int64 index per code took (0.7 GB for one 4096 x 14336 matrix).
        using var pairs = PairTable(Device);
        var values = pairs.index_select(0, _packed.to(ScalarType.Int32)).view(-1, BlockSize);
        values.mul_(Absmax().unsqueeze(1));
        return values.reshape(-1)[..(int)Count].view(OutFeatures, InFeatures).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Row b holds the code values of byte b's high and low nibble.</summary>
    static Tensor PairTable(Device device)
    {
        var table = new float[256 * 2];
        for (int b = 0; b < 256; b++) { table[2 * b] = Codebooks.Nf4[b >> 4]; table[2 * b + 1] = Codebooks.Nf4[b & 15]; }
        return tensor(table, new long[] { 256, 2 }, device: device);
    }

    public override void MoveTo(Device device)
    {
        if (device.Equals(Device)) return;
        var packed = _packed.to(device).DetachFromDisposeScope();
        var absmax = _absmax.to(device).DetachFromDisposeScope();
        var scales = _absmaxScales?.to(device).DetachFromDisposeScope();
        _packed.Dispose(); _absmax.Dispose(); _absmaxScales?.Dispose();
        (_packed, _absmax, _absmaxScales) = (packed, absmax, scales);
    }

    public override void Dispose() { _packed.Dispose(); _absmax.Dispose(); _absmaxScales?.Dispose(); }
}
