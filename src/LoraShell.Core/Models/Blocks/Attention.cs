using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// Causal self-attention for every family: separate or fused q/k/v projections, grouped-query heads,
/// optional per-head q/k RMSNorm (Qwen3) before rotary positions (full or partial), an optional
/// sliding window, and a KV cache for incremental decoding.
/// </summary>
public sealed class Attention : ProjectionHost
{
    readonly int _heads, _kvHeads, _headDim, _layer;
    readonly int? _window;
    readonly double _queryScale;
    readonly RmsNorm? _qNorm, _kNorm;

    public Attention(ModelConfig c, int layer, WeightFormat? format = null) : base("Attention", c.Family.Layout.AttentionProjections, c, c.Family.Layout.Storage, format ?? WeightFormat.Default)
    {
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        _layer = layer;
        _window = c.SlidingWindow;
        // scaled_dot_product_attention divides by √head_dim; GPT-2's options change that, so q absorbs the difference.
        _queryScale = (c.ScaleAttentionWeights ? 1.0 : Math.Sqrt(_headDim)) / (c.ScaleAttentionByInverseLayer ? layer + 1.0 : 1.0);
        if (c.Family.Layout.QueryKeyNorm)
        {
            _qNorm = new RmsNorm(_headDim, c.RmsNormEps);
            _kNorm = new RmsNorm(_headDim, c.RmsNormEps);
            register_module(FamilyLayout.QueryNorm, _qNorm);
            register_module(FamilyLayout.KeyNorm, _kNorm);
        }
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public RmsNorm? QueryNorm => _qNorm;
    public RmsNorm? KeyNorm => _kNorm;

    /// <param name="x">[batch, seq, hidden]</param>
    /// <param name="rotary">cos/sin for this step's positions, [seq, rotaryDim]; null with learned positions</param>
    /// <param name="cache">past keys/values; appended to when given</param>
    /// <param name="past">positions already in the cache before this forward pass</param>
    /// <param name="packed">for rows of several documents (<see cref="PackedLayout.Mask"/>): who may attend to whom; null for one sequence per row</param>
    public Tensor Forward(Tensor x, (Tensor Cos, Tensor Sin)? rotary, KvCache? cache, long past, Tensor? packed = null)
    {
        long batch = x.shape[0], seq = x.shape[1];
        var (q, k, v) = Project(x);
        q = Heads(q, batch, seq, _heads, _qNorm);
        k = Heads(k, batch, seq, _kvHeads, _kNorm);
        v = v.view(batch, seq, _kvHeads, _headDim).transpose(1, 2);
        if (rotary is var (cos, sin))
        {
            q = RotaryEmbedding.Apply(q, cos, sin);
            k = RotaryEmbedding.Apply(k, cos, sin);
        }
        if (_queryScale != 1.0) q = q * _queryScale;

        if (cache != null) (k, v) = cache.Append(_layer, k, v);
        if (_kvHeads != _heads)
        {
            long repeat = _heads / _kvHeads;
            k = k.repeat_interleave(repeat, dim: 1);
            v = v.repeat_interleave(repeat, dim: 1);
        }

        var mask = packed is null ? Mask(seq, past, k.shape[2], x.device) : Windowed(packed, seq, x.device);
        var attended = mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, past == 0 && seq > 1)
            : nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0, false);
        return Get(ProjectionRole.Output).call(attended.transpose(1, 2).reshape(batch, seq, _heads * _headDim));
    }

    (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        if (!Has(ProjectionRole.QueryKeyValue))
            return (Get(ProjectionRole.Query).call(x), Get(ProjectionRole.Key).call(x), Get(ProjectionRole.Value).call(x));
        var qkv = Get(ProjectionRole.QueryKeyValue).call(x);
        long qd = _heads * _headDim, kvd = _kvHeads * _headDim;
        return (qkv.narrow(-1, 0, qd), qkv.narrow(-1, qd, kvd), qkv.narrow(-1, qd + kvd, kvd));
    }

    Tensor Heads(Tensor t, long batch, long seq, int heads, RmsNorm? norm)
    {
        var h = t.view(batch, seq, heads, _headDim);
        if (norm is not null) h = norm.call(h);
        return h.transpose(1, 2);
    }

    /// <summary>A packed row's block-diagonal mask, narrowed to the sliding window when the family has one.</summary>
    Tensor Windowed(Tensor packed, long seq, Device device)
    {
        if (_window is not int w || seq <= w) return packed;
        var rows = arange(seq, device: device).unsqueeze(1);
        var cols = arange(seq, device: device).unsqueeze(0);
        return packed.logical_and(cols > rows - w);
    }

    /// <summary>
    /// Which keys each new query may see, or null when plain causal masking (or none, for one new
    /// position) is exact: queries at past..past+seq−1 see keys up to their own position and, with a
    /// sliding window W, only keys j with i − W &lt; j (W keys, itself included).
    /// </summary>
    Tensor? Mask(long seq, long past, long keys, Device device)
    {
        bool windowed = _window is int w && keys > w;
        if (!windowed && (past == 0 || seq == 1)) return null;
        var rows = arange(past, past + seq, device: device).unsqueeze(1);
        var cols = arange(keys, device: device).unsqueeze(0);
        var allowed = cols <= rows;
        if (windowed) allowed = allowed & (cols > rows - _window!.Value);
        return allowed;
    }
}
