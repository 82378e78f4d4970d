using LoraShell.Core.Models.Families;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>The family's norm: RMSNorm (weight) or LayerNorm (weight and bias).</summary>
public static class Norms
{
    public static nn.Module<Tensor, Tensor> Create(ModelConfig c, long size, ScalarType dtype = ScalarType.Float32)
    {
        nn.Module<Tensor, Tensor> norm = c.Family.Layout.Norm == NormKind.Layer
            ? nn.LayerNorm(size, c.RmsNormEps)
            : new RmsNorm(size, c.RmsNormEps);
        return dtype == ScalarType.Float32 ? norm : norm.to(dtype);
    }
}
