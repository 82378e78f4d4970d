using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>Logits of the tiny families' fixed ids, and how far two sets of them are apart (max |Δ| over the largest |logit|).</summary>
internal static class LogitChecks
{
    public static Tensor Logits(LoadedModel m)
    {
        using var _ = no_grad();
        return m.Model.forward(TinyFamilies.IdTensor()).to(ScalarType.Float64);
    }

    public static double RelativeError(PythonReference.Result reference, Tensor ours)
    {
        using var r = tensor(reference.Logits);
        return RelativeError(r, ours);
    }

    public static double RelativeError(Tensor expected, Tensor ours) => (expected - ours).abs().max().item<double>() / expected.abs().max().item<double>();
}
