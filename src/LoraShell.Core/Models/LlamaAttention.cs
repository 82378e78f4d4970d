using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>Grouped-query self-attention with rotary positions and an optional KV cache.</summary>
public sealed class LlamaAttention : nn.Module, ILinearHost
{
    public nn.Module<Tensor, Tensor> q_proj, k_proj, v_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim;

    public LlamaAttention(LlamaConfig c) : base(nameof(LlamaAttention))
    {
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        q_proj = nn.Linear(c.HiddenSize, _heads * _headDim, hasBias: c.AttentionBias);
        k_proj = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.AttentionBias);
        v_proj = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.AttentionBias);
        o_proj = nn.Linear(_heads * _headDim, c.HiddenSize, hasBias: c.AttentionBias);
        RegisterComponents();
    }

    /// <param name="x">[batch, seq, hidden]</param>
    /// <param name="cos">rotary table for this step's positions, [seq, headDim]</param>
    /// <param name="sin">rotary table, [seq, headDim]</param>
    /// <param name="cache">past keys/values; appended to when given</param>
    /// <param name="layer">index of this layer in the cache</param>
    /// <param name="past">positions already in the cache before this forward pass</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, KvCache? cache, int layer, long past)
    {
        long batch = x.shape[0], seq = x.shape[1];
        var q = q_proj.call(x).view(batch, seq, _heads, _headDim).transpose(1, 2);
        var k = k_proj.call(x).view(batch, seq, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.call(x).view(batch, seq, _kvHeads, _headDim).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);

        if (cache != null) (k, v) = cache.Append(layer, k, v);
        if (_kvHeads != _heads)
        {
            long repeat = _heads / _kvHeads;
            k = k.repeat_interleave(repeat, dim: 1);
            v = v.repeat_interleave(repeat, dim: 1);
        }

        Tensor attended;
        if (past == 0)
            attended = nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, seq > 1);
        else if (seq == 1)
            attended = nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, false);
        else
        {
            // New queries at positions past..past+seq-1 see every key up to their own position.
            var rows = arange(past, past + seq, device: x.device).unsqueeze(1);
            var cols = arange(past + seq, device: x.device).unsqueeze(0);
            attended = nn.functional.scaled_dot_product_attention(q, k, v, cols <= rows, 0.0, false);
        }
        return o_proj.call(attended.transpose(1, 2).reshape(batch, seq, _heads * _headDim));
    }

    public IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections =>
        new[] { ("q_proj", q_proj), ("k_proj", k_proj), ("v_proj", v_proj), ("o_proj", o_proj) };

    public void ReplaceProjection(string name, nn.Module<Tensor, Tensor> replacement)
    {
        switch (name)
        {
            case "q_proj": q_proj = replacement; break;
            case "k_proj": k_proj = replacement; break;
            case "v_proj": v_proj = replacement; break;
            case "o_proj": o_proj = replacement; break;
            default: throw new ArgumentException($"LlamaAttention has no projection '{name}'.", nameof(name));
        }
        register_module(name, null!);
        register_module(name, replacement);
    }
}
