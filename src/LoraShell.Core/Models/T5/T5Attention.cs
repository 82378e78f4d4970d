using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// T5's multi-head attention (transformers' T5Attention): q, k, v, o without bias, no 1/√d scaling of the
/// scores (T5 folds it into the initialisation), and — in the first layer of each stack only — the
/// relative position bias table every layer of the stack shares.
/// </summary>
public sealed class T5Attention : NamedProjectionHost
{
    readonly Embedding? _relativeBias;
    readonly int _heads, _dKv;

    public T5Attention(T5Config c, bool hasRelativeBias) : base(nameof(T5Attention))
    {
        _heads = c.NumHeads;
        _dKv = c.DKv;
        AddProjection("q", new LinearProjection(c.DModel, c.InnerDim, hasBias: false));
        AddProjection("k", new LinearProjection(c.DModel, c.InnerDim, hasBias: false));
        AddProjection("v", new LinearProjection(c.DModel, c.InnerDim, hasBias: false));
        AddProjection("o", new LinearProjection(c.InnerDim, c.DModel, hasBias: false));
        if (hasRelativeBias)
        {
            _relativeBias = nn.Embedding(c.RelativeAttentionNumBuckets, c.NumHeads);
            register_module("relative_attention_bias", _relativeBias);
        }
    }

    /// <summary>The relative position bias table (the first layer of each stack only).</summary>
    public Embedding? relative_attention_bias => _relativeBias;

    /// <summary>[B, S, inner] → [B, heads, S, d_kv].</summary>
    Tensor Heads(Tensor x) => x.view(x.shape[0], x.shape[1], _heads, _dKv).transpose(1, 2);

    /// <summary>The keys and values of <paramref name="source"/> [B, S, d_model], each [B, heads, S, d_kv].</summary>
    public (Tensor Keys, Tensor Values) KeysValues(Tensor source) => (Heads(Projection("k").forward(source)), Heads(Projection("v").forward(source)));

    /// <summary>
    /// Attention of <paramref name="x"/> [B, T, d_model] over the given keys and values, with
    /// <paramref name="bias"/> (position bias and mask, broadcast to [B, heads, T, S]) added to the scores.
    /// </summary>
    public Tensor Attend(Tensor x, Tensor keys, Tensor values, Tensor bias)
    {
        using var scope = NewDisposeScope();
        var queries = Heads(Projection("q").forward(x));
        var scores = matmul(queries, keys.transpose(2, 3)) + bias;
        var probabilities = scores.to(ScalarType.Float32).softmax(-1).to(scores.dtype);
        var mixed = matmul(probabilities, values).transpose(1, 2).reshape(x.shape[0], x.shape[1], _heads * _dKv);
        return Projection("o").forward(mixed).MoveToOuterDisposeScope();
    }
}

/// <summary>T5's feed-forward (DenseReluDense): wo(act(wi·x)), or wo(act(wi_0·x) ⊙ wi_1·x) when gated.</summary>
public sealed class T5FeedForward : NamedProjectionHost
{
    readonly string _activation;

    public T5FeedForward(T5Config c) : base(nameof(T5FeedForward))
    {
        if (c.GatedFeedForward)
        {
            AddProjection("wi_0", new LinearProjection(c.DModel, c.DFf, hasBias: false));
            AddProjection("wi_1", new LinearProjection(c.DModel, c.DFf, hasBias: false));
        }
        else AddProjection("wi", new LinearProjection(c.DModel, c.DFf, hasBias: false));
        AddProjection("wo", new LinearProjection(c.DFf, c.DModel, hasBias: false));
        _activation = c.DenseActivation;
    }

    public Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = HasProjection("wi")
            ? Families.Activations.Apply(_activation, Projection("wi").forward(x))
            : Families.Activations.Apply(_activation, Projection("wi_0").forward(x)) * Projection("wi_1").forward(x);
        return Projection("wo").forward(hidden).MoveToOuterDisposeScope();
    }
}
