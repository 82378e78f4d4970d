using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// Gradient checkpointing of one decoder layer, as transformers' <c>gradient_checkpointing_enable()</c>
/// does it: forward runs the layer without recording a graph and keeps only its input; backward runs
/// the layer again with a graph and backpropagates through it, accumulating the layer's parameter
/// gradients as it goes and returning the gradient of the input. Activations of one layer exist at a
/// time instead of all of them.
/// </summary>
/// <remarks>
/// Random draws (LoRA dropout) must be the same in both runs or the gradient is of another function:
/// on CPU the generator's state is saved before the forward and restored around the recomputation (so
/// a checkpointed run draws exactly what an ordinary one does); on CUDA, whose generator TorchSharp does
/// not expose, the layer is seeded with a number drawn from the CPU generator, the same both times.
/// </remarks>
internal sealed class LayerRecompute : SingleTensorFunction<LayerRecompute>
{
    /// <summary>What a recomputation needs besides the input.</summary>
    sealed record Recipe(DecoderLayer Layer, (Tensor Cos, Tensor Sin)? Rotary, Tensor? Packed, Tensor? CpuRngState, long? CudaSeed) : IDisposable
    {
        public void Dispose() => CpuRngState?.Dispose();
    }

    public override string Name => nameof(LayerRecompute);

    /// <summary>The layer's output for <paramref name="x"/>, recomputed in backward instead of kept.</summary>
    public static Tensor Run(DecoderLayer layer, Tensor x, (Tensor Cos, Tensor Sin)? rotary, Tensor? packed = null)
    {
        // With nothing upstream that needs a gradient (a frozen embedding) the function would not be
        // part of the graph and the layer's own trainable weights would get none; the input is marked as
        // needing one, which is what transformers' enable_input_require_grads does.
        if (!x.requires_grad) x = x.detach().requires_grad_(true);
        return apply(x, new Recipe(layer, rotary, packed, x.device.type == DeviceType.CPU ? get_rng_state() : null,
            x.device.type == DeviceType.CPU ? null : randint(0, long.MaxValue, new long[] { 1 }, dtype: ScalarType.Int64).item<long>()));
    }

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var recipe = (Recipe)vars[1];
        ctx.save_for_backward(new List<Tensor> { x });
        ctx.save_data(nameof(Recipe), recipe);
        if (recipe.CudaSeed is long seed) cuda.manual_seed(seed);
        return recipe.Layer.Forward(x, recipe.Rotary, cache: null, past: 0, recipe.Packed);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
    {
        using var recipe = (Recipe)ctx.get_data(nameof(Recipe));
        using var saved = ctx.get_saved_variables()[0];
        using var input = saved.detach().requires_grad_(true);
        using var current = recipe.CpuRngState is null ? null : get_rng_state();
        if (recipe.CpuRngState is not null) set_rng_state(recipe.CpuRngState);
        if (recipe.CudaSeed is long seed) cuda.manual_seed(seed);
        try
        {
            using (enable_grad())
            using (var output = recipe.Layer.Forward(input, recipe.Rotary, cache: null, past: 0, recipe.Packed))
                torch.autograd.backward(new[] { output }, new[] { gradOutput });
        }
        finally
        {
            if (current is not null) set_rng_state(current);
            // The engine's gradient, wrapped for this call only; kept in the step's scope it would live to the end of the step.
            gradOutput.Dispose();
        }
        return new List<Tensor> { GradientHandoff.Hand(input.grad!), null! };
    }
}
