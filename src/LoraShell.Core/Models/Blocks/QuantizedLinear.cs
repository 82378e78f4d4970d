using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// x · Wᵀ for a quantized frozen W, as bitsandbytes' MatMul4Bit does it: forward dequantizes W, multiplies
/// and drops it; backward dequantizes it again for the input's gradient (the weight has none). Autograd
/// would otherwise keep every layer's dense W alive until backward, undoing the quantization.
/// </summary>
internal sealed class QuantizedLinear : SingleTensorFunction<QuantizedLinear>
{
    public override string Name => nameof(QuantizedLinear);

    public static Tensor Apply(Tensor x, QuantizedProjection layer)
    {
        // Without a graph (inference, a frozen backbone) there is nothing to save: a plain matmul. A
        // checkpointed layer's recomputation goes through the function too: a plain matmul there would keep
        // every dense weight of the layer for its backward (176 MiB for a TinyLlama-1.1B layer in float32,
        // measured), where the function keeps only its input.
        if (!is_grad_enabled() || !x.requires_grad)
        {
            using var w = layer.Dequantized();
            return nn.functional.linear(x, w);
        }
        return apply(x, layer);
    }

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var layer = (QuantizedProjection)vars[1];
        ctx.save_data(nameof(QuantizedProjection), layer);
        using var w = layer.Dequantized();
        return nn.functional.linear(x, w);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
    {
        var layer = (QuantizedProjection)ctx.get_data(nameof(QuantizedProjection));
        using var w = layer.Dequantized();
        var gradInput = gradOutput.matmul(w);
        gradOutput.Dispose(); // this call's wrapper of the engine's gradient (see LayerRecompute)
        return new List<Tensor> { GradientHandoff.Hand(gradInput), null! };
    }
}
