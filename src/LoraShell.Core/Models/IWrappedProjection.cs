using LoraShell.Core.Models.Blocks;

namespace LoraShell.Core.Models;

/// <summary>
/// A module that stands in a projection's slot and wraps it (a LoRA layer): code below the wrapper's
/// layer reaches the frozen projection through this, without knowing what wraps it.
/// </summary>
public interface IWrappedProjection
{
    Projection Base { get; }
}

/// <summary>Finding the projection in a slot, wrapped or not.</summary>
public static class ProjectionSlots
{
    public static Projection BaseOf(TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> module) => module switch
    {
        Projection p => p,
        IWrappedProjection w => w.Base,
        _ => throw new InvalidOperationException($"{module.GetType().Name} is neither a projection nor wraps one."),
    };
}
