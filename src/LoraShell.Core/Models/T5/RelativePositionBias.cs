using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// T5's relative position bias: each key-minus-query distance falls in one of num_buckets buckets (exact
/// for short distances, logarithmic up to max_distance, the last bucket beyond), each bucket has a learned
/// bias per head, added to the attention scores. Bidirectional in the encoder (half the buckets for keys
/// after the query), causal in the decoder (only keys at or before it). Computed as transformers computes
/// it, the logarithm in float32, so the buckets are the same integer for integer.
/// </summary>
public static class RelativePositionBias
{
    /// <summary>The bucket of each relative position (key − query).</summary>
    public static Tensor Buckets(Tensor relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        var buckets = zeros_like(relativePosition);
        Tensor distance;
        if (bidirectional)
        {
            numBuckets /= 2;
            buckets = buckets + (relativePosition > 0).to(ScalarType.Int64) * numBuckets;
            distance = relativePosition.abs();
        }
        else distance = -relativePosition.clamp_max(0);
        int maxExact = numBuckets / 2;
        var isSmall = distance < maxExact;
        // log(0) is -inf here, but those positions are small and take the exact branch.
        var large = maxExact + (log(distance.to(ScalarType.Float32) / maxExact) / (float)Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact)).to(ScalarType.Int64);
        large = large.clamp_max(numBuckets - 1);
        return (buckets + where(isSmall, distance, large)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The bias [1, heads, queries, keys] for <paramref name="queries"/> positions starting at
    /// <paramref name="queryOffset"/> (a cached decoding step) against keys 0..keys-1.
    /// </summary>
    public static Tensor Compute(TorchSharp.Modules.Embedding table, long queries, long keys, long queryOffset, bool bidirectional, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        var device = table.weight!.device;
        var context = arange(queryOffset, queryOffset + queries, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var memory = arange(keys, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var buckets = Buckets(memory - context, bidirectional, numBuckets, maxDistance);
        return table.forward(buckets).permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }
}
