using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// The MLP of every family: gated, down(act(gate(x)) · up(x)), with gate and up separate or fused
/// (Phi-3's gate_up_proj, gate half first); or plain, down(act(up(x))) (GPT-2's c_fc, c_proj).
/// </summary>
public sealed class FeedForward : ProjectionHost
{
    readonly string _activation;
    readonly long _intermediate;

    public FeedForward(ModelConfig c, WeightFormat? format = null) : base("FeedForward", c.Family.Layout.FeedForwardProjections, c, c.Family.Layout.Storage, format ?? WeightFormat.Default)
    {
        _activation = c.HiddenAct;
        _intermediate = c.IntermediateSize;
    }

    public Tensor Forward(Tensor x)
    {
        Tensor hidden;
        if (Has(ProjectionRole.GateUp))
        {
            var gateUp = Get(ProjectionRole.GateUp).call(x);
            hidden = Activations.Apply(_activation, gateUp.narrow(-1, 0, _intermediate)) * gateUp.narrow(-1, _intermediate, _intermediate);
        }
        else if (Has(ProjectionRole.Gate))
            hidden = Activations.Apply(_activation, Get(ProjectionRole.Gate).call(x)) * Get(ProjectionRole.Up).call(x);
        else
            hidden = Activations.Apply(_activation, Get(ProjectionRole.Up).call(x));
        return Get(ProjectionRole.Down).call(hidden);
    }
}
