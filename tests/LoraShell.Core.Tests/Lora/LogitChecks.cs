using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// A tiny family's model written as an HF folder and loaded from it, its logits for the fixed ids, and how far two
/// sets of them are apart (max |Δ| over the largest |logit|).
/// </summary>
internal static class LogitChecks
{
    /// <summary>The tiny <paramref name="family"/> model, written once to <c>dir/model</c> (the reference reads that folder) and loaded from it.</summary>
    public static LoadedModel LoadTiny(TempFolder dir, string family)
    {
        if (!Directory.Exists(dir.File("model")))
            using (var written = TinyFamilies.Create(TinyFamilies.All.Single(x => x.Name == family))) Core.Models.HuggingFaceWriter.Save(written, dir.File("model"), overwrite: false);
        return LoadedModel.Load(new ModelLoadOptions { Path = dir.File("model"), TokenizerPath = SharedData.Tok512 });
    }

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
