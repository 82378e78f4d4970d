using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// A module that owns named projection layers (q_proj, gate_proj, …) which can be swapped for a
/// wrapper (a LoRA layer) in place. Explicit instead of reflection: each host lists its slots.
/// </summary>
public interface ILinearHost
{
    IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections { get; }
    void ReplaceProjection(string name, nn.Module<Tensor, Tensor> replacement);
}
