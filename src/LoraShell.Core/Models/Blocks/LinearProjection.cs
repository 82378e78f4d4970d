using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>nn.Linear: y = x·Wᵀ + b with W [out, in].</summary>
public sealed class LinearProjection : Projection
{
    public Parameter weight;
    public Parameter? bias;

    public LinearProjection(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype = ScalarType.Float32, bool initialize = true) : base("Linear")
    {
        weight = nn.Parameter(empty(outFeatures, inFeatures, dtype: dtype));
        register_parameter(nameof(weight), weight);
        if (hasBias)
        {
            bias = nn.Parameter(zeros(outFeatures, dtype: dtype));
            register_parameter(nameof(bias), bias);
        }
        // nn.Linear's init, so a freshly built model is usable (random checkpoints, tests, side blocks).
        if (!initialize) return;
        using var _ = no_grad();
        nn.init.kaiming_uniform_(weight, Math.Sqrt(5));
        if (bias is not null) nn.init.uniform_(bias, -1 / Math.Sqrt(inFeatures), 1 / Math.Sqrt(inFeatures));
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public override long InFeatures => weight.shape[1];
    public override long OutFeatures => weight.shape[0];
    public override Parameter? Bias => bias;
    public override Device WeightDevice => weight.device;
    public override ScalarType ComputeDType => weight.dtype;

    public override Tensor forward(Tensor x) => nn.functional.linear(x, weight, bias);

    public override Tensor DenseWeight() => weight.detach().to(ScalarType.Float32);

    public override void SetDenseWeight(Tensor outIn)
    {
        using var _ = no_grad();
        weight.copy_(outIn.to(weight.dtype));
    }
}
