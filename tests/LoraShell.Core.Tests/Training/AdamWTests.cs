using LoraShell.Core.Training;
using Parameter = TorchSharp.Modules.Parameter;
using Xunit;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class AdamWTests
{
    /// <summary>
    /// PyTorch's AdamW (decoupled decay, bias-corrected moments, ε outside the root) written out in float64 from
    /// its documented algorithm, step by step, against LoraShell's optimizer on the same gradients.
    /// </summary>
    [Fact]
    public void Steps_equal_the_documented_AdamW_algorithm_in_float64()
    {
        manual_seed(4);
        var weight = new Parameter(randn(6, 5));
        var bias = new Parameter(randn(5));
        double lr = 3e-2, b1 = 0.9, b2 = 0.98, eps = 1e-6, decay = 0.1;
        using var optimizer = new AdamW(new[] { ("w", weight), ("b", bias) }, b1, b2, eps, decay);
        var reference = new[] { weight, bias }.Select(p => (P: p.detach().to(ScalarType.Float64), M: zeros(p.shape, ScalarType.Float64), V: zeros(p.shape, ScalarType.Float64), Decay: p.dim() >= 2)).ToList();

        for (int step = 1; step <= 5; step++)
        {
            var gradients = new[] { randn(6, 5) * step, randn(5) / step };
            weight.grad = gradients[0].clone();
            bias.grad = gradients[1].clone();
            optimizer.Step(lr);
            for (int i = 0; i < 2; i++)
            {
                var (p, m, v, decays) = reference[i];
                var g = gradients[i].to(ScalarType.Float64);
                if (decays) p.mul_(1 - lr * decay);
                m.mul_(b1).add_(g * (1 - b1));
                v.mul_(b2).add_(g * g * (1 - b2));
                var mHat = m / (1 - Math.Pow(b1, step));
                var vHat = v / (1 - Math.Pow(b2, step));
                p.sub_(lr * mHat / (vHat.sqrt() + eps));
            }
            optimizer.ZeroGrad();
            Assert.True(TensorAssert.MaxAbsDiff(reference[0].P.to(ScalarType.Float32), weight.detach()) < 1e-6, $"weight after step {step}");
            Assert.True(TensorAssert.MaxAbsDiff(reference[1].P.to(ScalarType.Float32), bias.detach()) < 1e-6, $"bias after step {step}");
        }
        Assert.Null(weight.grad);
    }
}
