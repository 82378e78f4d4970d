using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

static class TensorAssert
{
    /// <summary>Same dtype, shape and every element bit-equal.</summary>
    public static void Identical(Tensor expected, Tensor actual, string? what = null)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.eq(actual).all().item<bool>(), what ?? "tensors differ");
    }

    /// <summary>max |a - b| (in float64).</summary>
    public static double MaxAbsDiff(Tensor a, Tensor b)
        => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    /// <summary>Same length and max |a - b| ≤ tolerance · max(1, max |expected|), naming the worst element.</summary>
    public static void Close(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {expected.Length} values expected, {actual.Length} found");
        double scale = Math.Max(1, expected.Length == 0 ? 0 : expected.Max(v => Math.Abs((double)v)));
        int worst = -1;
        double diff = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)expected[i] - actual[i]);
            if (!(d <= diff)) { diff = d; worst = i; }
        }
        Assert.True(diff <= tolerance * scale, $"{what}: element {worst} differs by {diff:E2} ({expected[Math.Max(worst, 0)]} vs {actual[Math.Max(worst, 0)]}); allowed {tolerance * scale:E2}");
    }
}
