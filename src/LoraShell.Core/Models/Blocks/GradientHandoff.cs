using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// The gradients LoraShell's custom autograd functions hand back to the engine. TorchSharp registers
/// their managed handles in the current dispose scope (the training step's), which would keep each one
/// alive until the step ends: a layer input's worth of memory per layer. The engine holds its own
/// reference once the callback returns and has consumed it before the next callback on the same thread
/// runs, so the previous one is released when the next is handed over (the last one goes with the scope).
/// </summary>
internal static class GradientHandoff
{
    [ThreadStatic] static Tensor? _last;

    public static Tensor Hand(Tensor gradient)
    {
        _last?.Dispose();
        _last = gradient;
        return gradient;
    }
}
