using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// How several adapters' tensors of one module become one, as PEFT's <c>utils/merge_utils.py</c> defines
/// it: a weighted sum (task arithmetic), magnitude pruning to a density, TIES (prune, elect a sign per entry
/// from the unweighted sum or the sign count, average the weighted entries that agree) and DARE (drop
/// entries at random, rescale by 1/density). Tensors are float32 of one shape, weights one per tensor.
/// </summary>
internal static class TaskMerging
{
    public static Tensor Merge(CombinationType type, IReadOnlyList<Tensor> tensors, IReadOnlyList<double> weights, AdapterCombination o, Generator? random)
        => type switch
        {
            CombinationType.Linear or CombinationType.Svd => WeightedSum(Stack(tensors), weights),
            CombinationType.MagnitudePrune or CombinationType.MagnitudePruneSvd => WeightedSum(Stack(tensors.Select(t => PruneByMagnitude(t, o.Density!.Value))), weights),
            CombinationType.Ties or CombinationType.TiesSvd => Ties(Stack(tensors.Select(t => PruneByMagnitude(t, o.Density!.Value))), weights, o.MajoritySign),
            CombinationType.DareLinear or CombinationType.DareLinearSvd => WeightedSum(Stack(tensors.Select(t => PruneAtRandom(t, o.Density!.Value, random!))), weights),
            CombinationType.DareTies or CombinationType.DareTiesSvd => Ties(Stack(tensors.Select(t => PruneAtRandom(t, o.Density!.Value, random!))), weights, o.MajoritySign),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a merge of task tensors"),
        };

    /// <summary>[n, …] from n tensors of one shape (an explicit array: other overloads of stack bind to an IEnumerable wrongly).</summary>
    static Tensor Stack(IEnumerable<Tensor> tensors) => stack(tensors.ToArray(), 0);

    static Tensor Weights(Tensor stacked, IReadOnlyList<double> weights)
        => tensor(weights.Select(w => (float)w).ToArray(), device: stacked.device).view(new long[] { weights.Count }.Concat(Enumerable.Repeat(1L, (int)stacked.dim() - 1)).ToArray());

    static Tensor WeightedSum(Tensor stacked, IReadOnlyList<double> weights) => (stacked * Weights(stacked, weights)).sum(new long[] { 0 });

    /// <summary>Keeps the int(density·numel) largest entries by magnitude; density ≥ 1 keeps everything (PEFT prunes nothing and warns).</summary>
    public static Tensor PruneByMagnitude(Tensor t, double density)
    {
        if (density >= 1) return t;
        int k = (int)(density * t.numel());
        var mask = zeros(t.numel(), dtype: t.dtype, device: t.device);
        if (k > 0) mask.index_put_(ones(1, dtype: t.dtype, device: t.device), t.abs().reshape(-1).topk(k).Item2);
        return t * mask.view(t.shape);
    }

    /// <summary>DARE: keeps each entry with probability density and divides the kept ones by it.</summary>
    public static Tensor PruneAtRandom(Tensor t, double density, Generator random)
    {
        if (density >= 1) return t;
        var mask = bernoulli(full_like(t, density, dtype: ScalarType.Float32), random).to(t.dtype);
        return t * mask / density;
    }

    /// <summary>TIES: the sign of each entry is elected on the unweighted tensors; the weighted entries that agree are averaged.</summary>
    static Tensor Ties(Tensor stacked, IReadOnlyList<double> weights, MajoritySign method)
    {
        var signs = stacked.sign();
        var votes = method == MajoritySign.Total ? stacked.sum(new long[] { 0 }) : signs.sum(new long[] { 0 });
        var majority = where(votes >= 0, ones_like(votes), -ones_like(votes));
        var agree = signs.eq(majority).to(stacked.dtype);
        var mixed = (stacked * Weights(stacked, weights) * agree).sum(new long[] { 0 });
        return mixed / agree.sum(new long[] { 0 }).clamp_min(1.0);
    }
}
