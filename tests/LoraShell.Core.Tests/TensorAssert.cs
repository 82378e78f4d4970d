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
}
