using LoraShell.Core.Models;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>How far merged logits are from the unmerged ones on a fixed sample.</summary>
public sealed record MergeParity(IReadOnlyList<string> Adapters, double MaxAbsDifference, double MeanAbsDifference, double MaxAbsLogit, int SampleTokens)
{
    /// <summary>Largest logit difference relative to the largest logit; float32 merging keeps it near 1e-7.</summary>
    public double Relative => MaxAbsLogit == 0 ? 0 : MaxAbsDifference / MaxAbsLogit;

    /// <summary>Above this, a merge changed the model more than rounding can explain.</summary>
    public const double WarningThreshold = 1e-3;
}

/// <summary>
/// Merging with a parity check (what users of LoRA tools keep asking for: merged must equal unmerged):
/// the logits of a fixed, model-independent sample are taken before and after the merge and compared.
/// </summary>
public static class MergeParityCheck
{
    /// <summary>BOS then a spread of token ids, the same for every run, so parities compare across runs.</summary>
    public static long[] SampleIds(int vocabSize, int length = 32, int bosId = 1)
        => Enumerable.Range(0, length).Select(i => i == 0 ? bosId : (long)((i * 7919L) % vocabSize)).ToArray();

    /// <summary>
    /// Merges <paramref name="names"/> (refusing NaN/Inf results; a merged adapter counts as active) and
    /// returns the logit parity.
    /// </summary>
    public static MergeParity Merge(LoraAdapterSet set, IReadOnlyList<string> names)
    {
        var model = set.Model;
        set.MergeTargets(names);
        set.SetActive(set.ActiveNames.Union(names).ToArray());
        var (vocab, longest, start) = model.ProbeShape;
        var ids = SampleIds(vocab, Math.Min(32, longest), start);
        using var before = Logits(model, ids);
        set.Merge(names, safe: true);
        using var after = Logits(model, ids);
        using var scope = NewDisposeScope();
        var diff = (before - after).abs();
        return new MergeParity(names.ToList(), diff.max().item<float>(), diff.mean().item<float>(), before.abs().max().item<float>(), ids.Length);
    }

    static Tensor Logits(IAdaptableModel model, long[] ids)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return model.ProbeLogits(ids).to(ScalarType.Float32).cpu().MoveToOuterDisposeScope();
    }
}
