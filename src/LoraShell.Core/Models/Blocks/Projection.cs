using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// A weight matrix a layer multiplies by: what LoRA wraps, merges into and quantization stores. Every
/// family's projections are one of these, whatever their storage: <see cref="LinearProjection"/>
/// ([out, in], nn.Linear), <see cref="Conv1DProjection"/> (GPT-2's [in, out]) or a quantized base.
/// State-dict names are HF's: <c>weight</c> and, when present, <c>bias</c>.
/// </summary>
public abstract class Projection : nn.Module<Tensor, Tensor>
{
    protected Projection(string name) : base(name) { }

    public abstract long InFeatures { get; }
    public abstract long OutFeatures { get; }

    /// <summary>PEFT's <c>fan_in_fan_out</c>: the weight is stored [in, out] (GPT-2's Conv1D).</summary>
    public virtual bool FanInFanOut => false;

    /// <summary>The bias [out], or null.</summary>
    public abstract Parameter? Bias { get; }

    public abstract Device WeightDevice { get; }

    /// <summary>The dtype computations with this layer run in.</summary>
    public abstract ScalarType ComputeDType { get; }

    /// <summary>The weight as a float32 [out, in] tensor (a copy or a view; do not write to it).</summary>
    public abstract Tensor DenseWeight();

    /// <summary>Replaces the weight by <paramref name="outIn"/> ([out, in], any float dtype), stored in this layer's layout and dtype.</summary>
    public abstract void SetDenseWeight(Tensor outIn);
}
