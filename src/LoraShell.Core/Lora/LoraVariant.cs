using LoraShell.Core.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// How one adapter of a <see cref="LoraLinear"/> starts, computes and folds into the base weight —
/// PEFT's LoraVariant seam: plain LoRA and DoRA differ only here, so the layer, the adapter set, the
/// file format and training do not branch on the method.
/// </summary>
public abstract class LoraVariant
{
    public static readonly LoraVariant Plain = new PlainLora();
    public static readonly LoraVariant Dora = new WeightDecomposedLora();

    public static LoraVariant For(bool useDora) => useDora ? Dora : Plain;

    /// <summary>Called once the factors are drawn (and, for PiSSA, the base rewritten).</summary>
    public virtual void Init(LoraLinear layer, string name) { }

    /// <summary>
    /// <paramref name="result"/> plus this adapter's share of the output. <paramref name="h"/> is the input
    /// in float32 after the adapter's dropout; <paramref name="dropped"/> says whether dropout changed it.
    /// </summary>
    public abstract Tensor Forward(LoraLinear layer, string name, Tensor h, bool dropped, Tensor result);

    /// <summary>The dense weight [out, in] (float32) with the adapter folded in.</summary>
    public abstract Tensor Merge(LoraLinear layer, string name, Tensor weight);

    /// <summary>The inverse of <see cref="Merge"/> on the weight it returned.</summary>
    public abstract Tensor Unmerge(LoraLinear layer, string name, Tensor weight);

    /// <summary>
    /// What the adapter trains and saves on one layer besides A and B, under its PEFT key for the module at
    /// <paramref name="modulePath"/> (DoRA: the magnitude). Saving, loading and training ask this instead of the variant's name.
    /// </summary>
    public virtual IEnumerable<(string Key, Parameter Parameter)> ExtraParameters(LoraLinear layer, string modulePath, string name)
        => Enumerable.Empty<(string, Parameter)>();

    // What the variant costs, stated here so Measure-LoraMemory asks it instead of branching on the method.

    /// <summary>Trainable parameters on one adapted [out, in] projection at rank r: A and B.</summary>
    public virtual long TrainableParameters(long inFeatures, long outFeatures, int rank) => rank * (inFeatures + outFeatures);

    /// <summary>Activation elements per token one adapted projection keeps for backward: A·x (the fused B GEMM keeps nothing more).</summary>
    public virtual double ActivationsPerToken(long inFeatures, long outFeatures, int rank) => rank;

    /// <summary>Bytes one adapted projection allocates and frees within its forward (part of the peak, not per token).</summary>
    public virtual double TransientBytes(long inFeatures, long outFeatures) => 0;

    /// <summary>LoRA: y = W0·x + s·B·A·x; merging adds s·B·A.</summary>
    sealed class PlainLora : LoraVariant
    {
        public override Tensor Forward(LoraLinear layer, string name, Tensor h, bool dropped, Tensor result)
        {
            double scaling = layer.Scaling(name);
            var down = nn.functional.linear(h, layer.lora_A[name].weight!); // [..., r]
            if (result.dtype != ScalarType.Float32)
                return result + (nn.functional.linear(down, layer.lora_B[name].weight!) * scaling).to(result.dtype);
            // One fused GEMM: result + scaling·(x·Aᵀ)·Bᵀ, without materialising the scaled update. Bᵀ is copied
            // contiguous ([r, out], a few KiB): given a transposed view, autograd computes dB as [out, T]·[T, r],
            // a GEMM MKL runs at a fifth of the rate of the [r, T]·[T, out] it picks for a contiguous operand
            // (bench: lora-backward-layouts, the up-projection's forward + backward 2x faster at 4,096 tokens).
            long outF = result.shape[^1];
            return addmm(result.reshape(-1, outF), down.reshape(-1, down.shape[^1]), layer.lora_B[name].weight!.t().contiguous(), beta: 1, alpha: (float)scaling)
                .view(result.shape);
        }

        public override Tensor Merge(LoraLinear layer, string name, Tensor weight) => weight + layer.DeltaWeight(name);

        public override Tensor Unmerge(LoraLinear layer, string name, Tensor weight) => weight - layer.DeltaWeight(name);
    }

    /// <summary>
    /// DoRA (Liu et al. 2024) as PEFT's <c>tuners/lora/dora.py</c> computes it: W′ = m · (W0 + s·B·A) / ‖W0 + s·B·A‖,
    /// the norm per output row of the [out, in] weight (a Conv1D's too, transposed) and detached from the
    /// graph, m [out] starting at that norm. The forward reuses the base output:
    /// y = W0x + b + (m/‖·‖ − 1)·W0x + (m/‖·‖)·s·BAx, where W0x is the base output less its bias, or
    /// W0·dropout(x) when dropout changed the input. As in PEFT, with several active adapters the "base
    /// output" an adapter scales includes the adapters applied before it.
    /// </summary>
    sealed class WeightDecomposedLora : LoraVariant
    {
        static Tensor RowNorm(Tensor weight) => linalg.vector_norm(weight, dims: new long[] { 1 });

        /// <summary>‖W0 + s·B·A‖ per output row, float32, without a graph.</summary>
        static Tensor WeightNorm(LoraLinear layer, string name, Tensor weight)
        {
            using var _ = no_grad();
            return RowNorm(weight + layer.DeltaWeight(name));
        }

        public override IEnumerable<(string Key, Parameter Parameter)> ExtraParameters(LoraLinear layer, string modulePath, string name)
        {
            yield return (PeftKeys.MagnitudeKey(modulePath), layer.lora_magnitude_vector[name].weight);
        }

        public override void Init(LoraLinear layer, string name)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            layer.lora_magnitude_vector[name].weight.copy_(WeightNorm(layer, name, layer.Base.DenseWeight()));
        }

        public override Tensor Forward(LoraLinear layer, string name, Tensor h, bool dropped, Tensor result)
        {
            // Temporaries (B·A, the weight norm, B·A·x, the two halves of the update) are freed here rather
            // than at the end of the step: autograd holds the two it needs (B·A·x·s and the base output).
            using var scope = NewDisposeScope();
            double scaling = layer.Scaling(name);
            var weight = layer.Base.DenseWeight(); // dequantized once per forward on a quantized base
            var scale = layer.lora_magnitude_vector[name].weight / WeightNorm(layer, name, weight); // [out]
            var lora = nn.functional.linear(nn.functional.linear(h, layer.lora_A[name].weight!), layer.lora_B[name].weight!);
            // Not detached: the gradient reaches the layer's input (and a trained bias cancels) through this path too.
            Tensor baseOutput;
            if (dropped) baseOutput = nn.functional.linear(h, weight);
            else
            {
                baseOutput = result.to(ScalarType.Float32);
                if (layer.Base.Bias is { } bias) baseOutput = baseOutput - bias.to(ScalarType.Float32);
            }
            var share = (scale - 1) * baseOutput + scale * (lora * scaling);
            return (result + share.to(result.dtype)).MoveToOuterDisposeScope();
        }

        public override Tensor Merge(LoraLinear layer, string name, Tensor weight)
        {
            var factor = layer.lora_magnitude_vector[name].weight.detach() / WeightNorm(layer, name, weight);
            layer.RememberMergeFactor(name, factor);
            return factor.unsqueeze(1) * (weight + layer.DeltaWeight(name));
        }

        public override Tensor Unmerge(LoraLinear layer, string name, Tensor weight)
            => weight / layer.MergeFactor(name).unsqueeze(1) - layer.DeltaWeight(name);

        /// <summary>A and B, and the magnitude m [out].</summary>
        public override long TrainableParameters(long inFeatures, long outFeatures, int rank) => rank * (inFeatures + outFeatures) + outFeatures;

        /// <summary>A·x, and for m's gradient both B·A·x and the base output it rescales ([out] each).</summary>
        public override double ActivationsPerToken(long inFeatures, long outFeatures, int rank) => rank + 2.0 * outFeatures;

        /// <summary>The weight norm's float32 B·A and W0 + s·B·A, [out, in] each.</summary>
        public override double TransientBytes(long inFeatures, long outFeatures) => 2 * 4.0 * inFeatures * outFeatures;
    }
}

/// <summary>DoRA's learned magnitude m [out] of one adapter; PEFT's state-dict name is <c>lora_magnitude_vector.NAME.weight</c>.</summary>
public sealed class DoraMagnitude : nn.Module
{
    public TorchSharp.Modules.Parameter weight;

    public DoraMagnitude(long outFeatures, Device device) : base(nameof(DoraMagnitude))
    {
        weight = new TorchSharp.Modules.Parameter(ones(outFeatures, dtype: ScalarType.Float32, device: device));
        RegisterComponents();
    }
}
