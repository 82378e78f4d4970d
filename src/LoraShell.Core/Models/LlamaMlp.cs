using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>SwiGLU feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>, ILinearHost
{
    public nn.Module<Tensor, Tensor> gate_proj, up_proj, down_proj;

    public LlamaMlp(LlamaConfig c) : base(nameof(LlamaMlp))
    {
        gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: c.MlpBias);
        up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: c.MlpBias);
        down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: c.MlpBias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
        => down_proj.call(nn.functional.silu(gate_proj.call(x)) * up_proj.call(x));

    public IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections =>
        new[] { ("gate_proj", gate_proj), ("up_proj", up_proj), ("down_proj", down_proj) };

    public void ReplaceProjection(string name, nn.Module<Tensor, Tensor> replacement)
    {
        switch (name)
        {
            case "gate_proj": gate_proj = replacement; break;
            case "up_proj": up_proj = replacement; break;
            case "down_proj": down_proj = replacement; break;
            default: throw new ArgumentException($"LlamaMlp has no projection '{name}'.", nameof(name));
        }
        register_module(name, null!);
        register_module(name, replacement);
    }
}
