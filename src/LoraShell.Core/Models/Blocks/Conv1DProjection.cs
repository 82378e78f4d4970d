using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// transformers' <c>Conv1D</c> (GPT-2): a Linear whose weight is stored transposed, [in, out], so
/// y = x·W + b. PEFT calls this layout <c>fan_in_fan_out</c>.
/// </summary>
public sealed class Conv1DProjection : Projection
{
    public Parameter weight;
    public Parameter bias;

    public Conv1DProjection(long inFeatures, long outFeatures, ScalarType dtype = ScalarType.Float32, bool initialize = true) : base("Conv1D")
    {
        weight = nn.Parameter(empty(inFeatures, outFeatures, dtype: dtype));
        bias = nn.Parameter(zeros(outFeatures, dtype: dtype));
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
        if (!initialize) return;
        using var _ = no_grad();
        nn.init.normal_(weight, 0, 0.02); // GPT-2's initializer_range
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public override long InFeatures => weight.shape[0];
    public override long OutFeatures => weight.shape[1];
    public override bool FanInFanOut => true;
    public override Parameter? Bias => bias;
    public override Device WeightDevice => weight.device;
    public override ScalarType ComputeDType => weight.dtype;

    public override Tensor forward(Tensor x)
    {
        var flat = x.reshape(-1, x.shape[^1]);
        var y = addmm(bias, flat, weight, 1, 1);
        var shape = x.shape.ToArray();
        shape[^1] = weight.shape[1];
        return y.view(shape);
    }

    public override Tensor DenseWeight() => weight.detach().t().to(ScalarType.Float32);

    public override void SetDenseWeight(Tensor outIn)
    {
        using var _ = no_grad();
        weight.copy_(outIn.t().to(weight.dtype));
    }
}
