using static TorchSharp.torch;

namespace LoraShell.Core.Models.Quantization;

/// <summary>
/// The value tables of bitsandbytes' blockwise formats, and nearest-value encoding into them.
/// </summary>
public static class Codebooks
{
    /// <summary>
    /// NF4 (bitsandbytes' <c>get_4bit_type("nf4")</c>, QLoRA appendix E): the quantiles of a standard
    /// normal, normalised to [-1, 1], with an exact zero; code i is the i-th value.
    /// </summary>
    public static readonly float[] Nf4 =
    {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
        0.7229568362236023f, 1.0f,
    };

    /// <summary>
    /// bitsandbytes' signed dynamic 8-bit map (<c>create_dynamic_map(signed=True, max_exponent_bits=7,
    /// total_bits=8)</c>), used for double quantization: for exponents 10^-6 … 10^0, the midpoints of
    /// 2^i + 1 points spread evenly over [0.1, 1], both signs, plus 0 and 1; sorted. Computed in float32 as
    /// the reference computes it (torch.linspace, float32 means, times the power of ten).
    /// </summary>
    public static float[] Dynamic8Bit() => LazyDynamic.Value;

    static readonly Lazy<float[]> LazyDynamic = new(() =>
    {
        var data = new List<float>();
        const int exponentBits = 7, nonSignBits = 7;
        for (int i = 0; i < exponentBits; i++)
        {
            int items = (1 << (i + nonSignBits - exponentBits)) + 1;
            using var boundaries = linspace(0.1, 1, items, dtype: ScalarType.Float32);
            using var means = (boundaries[1..] + boundaries[..^1]) / 2.0;
            float power = (float)Math.Pow(10, -(exponentBits - 1) + i);
            using var scaled = means * power;
            var values = scaled.data<float>().ToArray();
            data.AddRange(values);
            data.AddRange(values.Select(v => -v));
        }
        data.Add(0f);
        data.Add(1f);
        data.Sort();
        return data.ToArray();
    });

    /// <summary>
    /// Index of the nearest value of <paramref name="sortedCodes"/> for every element of <paramref name="x"/>
    /// (int64). Ties, which need x exactly on a midpoint, go to the lower value, as bitsandbytes'
    /// comparisons (<c>x &gt; threshold</c>) do.
    /// </summary>
    public static Tensor Nearest(Tensor x, float[] sortedCodes)
    {
        var midpoints = new float[sortedCodes.Length - 1];
        for (int i = 0; i < midpoints.Length; i++) midpoints[i] = (float)(((double)sortedCodes[i] + sortedCodes[i + 1]) / 2);
        using var boundaries = tensor(midpoints, device: x.device);
        return bucketize(x, boundaries, false, false); // int64 indices; right = false: x on a boundary goes below
    }
}
