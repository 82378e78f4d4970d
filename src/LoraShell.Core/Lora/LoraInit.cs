using LoraShell.Core.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// How a new adapter's factors start (PEFT's <c>init_lora_weights</c>). All but <see cref="Random"/>
/// start with B·A = 0 or, for PiSSA, with the base weight rewritten so the layer output is unchanged.
/// </summary>
public enum LoraInit
{
    /// <summary>PEFT's default (<c>true</c>): A kaiming-uniform (a = √5), B = 0.</summary>
    Default,
    /// <summary><c>"gaussian"</c>: A ~ N(0, std 1/r), B = 0.</summary>
    Gaussian,
    /// <summary><c>"pissa"</c>: A, B from the top-r singular triplets of W0; W0 becomes the residual.</summary>
    Pissa,
    /// <summary><c>false</c>: A and B both random (B·A ≠ 0); for tests and debugging, as in PEFT.</summary>
    Random,
}

/// <summary>Draws a new adapter's factors as its <see cref="LoraInit"/> says (PEFT's LoraLayer.reset_lora_parameters).</summary>
internal static class LoraInitialization
{
    /// <param name="a">A [r, in], drawn in place</param>
    /// <param name="b">B [out, r], drawn in place</param>
    /// <param name="baseLayer">the frozen projection; PiSSA rewrites its weight</param>
    public static void Draw(LoraInit init, Tensor a, Tensor b, Projection baseLayer, int rank, double scaling)
    {
        using var _ = no_grad();
        switch (init)
        {
            case LoraInit.Default:
                nn.init.kaiming_uniform_(a, Math.Sqrt(5));
                b.zero_();
                break;
            case LoraInit.Gaussian:
                nn.init.normal_(a, 0, 1.0 / rank);
                b.zero_();
                break;
            case LoraInit.Random:
                nn.init.kaiming_uniform_(a, Math.Sqrt(5));
                nn.init.kaiming_uniform_(b, Math.Sqrt(5));
                break;
            case LoraInit.Pissa:
                DrawPissa(a, b, baseLayer, rank, scaling);
                break;
        }
    }

    /// <summary>
    /// PiSSA: A = diag(√(S_r/s))·Vh_r, B = U_r·diag(√(S_r/s)) from W0 = U·S·Vh, then W0 ← W0 − s·B·A,
    /// so the layer's output is unchanged and the adapter holds the principal part of the weight.
    /// </summary>
    static void DrawPissa(Tensor a, Tensor b, Projection baseLayer, int rank, double scaling)
    {
        using var scope = NewDisposeScope();
        var w = baseLayer.DenseWeight();
        var (u, s, vh) = linalg.svd(w, fullMatrices: false);
        var root = (s.narrow(0, 0, rank) / scaling).sqrt();
        a.copy_(root.unsqueeze(1) * vh.narrow(0, 0, rank));
        b.copy_(u.narrow(1, 0, rank) * root.unsqueeze(0));
        baseLayer.SetDenseWeight(w - scaling * b.matmul(a));
    }
}
