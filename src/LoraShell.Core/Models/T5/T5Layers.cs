using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>layer.0 of a block: h + SelfAttention(layer_norm(h)).</summary>
public sealed class T5SelfAttentionLayer : nn.Module
{
    public T5Attention SelfAttention;
    public RmsNorm layer_norm;

    public T5SelfAttentionLayer(T5Config c, bool hasRelativeBias) : base(nameof(T5SelfAttentionLayer))
    {
        SelfAttention = new T5Attention(c, hasRelativeBias);
        layer_norm = new RmsNorm(c.DModel, c.LayerNormEpsilon);
        RegisterComponents();
    }
}

/// <summary>layer.1 of a decoder block: h + EncDecAttention(layer_norm(h)) over the encoder's output.</summary>
public sealed class T5CrossAttentionLayer : nn.Module
{
    public T5Attention EncDecAttention;
    public RmsNorm layer_norm;

    public T5CrossAttentionLayer(T5Config c) : base(nameof(T5CrossAttentionLayer))
    {
        EncDecAttention = new T5Attention(c, hasRelativeBias: false);
        layer_norm = new RmsNorm(c.DModel, c.LayerNormEpsilon);
        RegisterComponents();
    }
}

/// <summary>The last layer of a block: h + DenseReluDense(layer_norm(h)).</summary>
public sealed class T5FeedForwardLayer : nn.Module
{
    public T5FeedForward DenseReluDense;
    public RmsNorm layer_norm;

    public T5FeedForwardLayer(T5Config c) : base(nameof(T5FeedForwardLayer))
    {
        DenseReluDense = new T5FeedForward(c);
        layer_norm = new RmsNorm(c.DModel, c.LayerNormEpsilon);
        RegisterComponents();
    }

    public Tensor Apply(Tensor h) => h + DenseReluDense.forward(layer_norm.forward(h));
}

/// <summary>
/// One block of a stack, laid out as transformers' T5Block so the state-dict names are HF's
/// (block.N.layer.0.SelfAttention.q.weight, …): self-attention, in the decoder cross-attention, feed-forward.
/// </summary>
public sealed class T5Block : nn.Module
{
    public ModuleList<nn.Module> layer;
    readonly bool _decoder;

    public T5Block(T5Config c, bool decoder, bool hasRelativeBias) : base(nameof(T5Block))
    {
        _decoder = decoder;
        layer = nn.ModuleList<nn.Module>();
        layer.Add(new T5SelfAttentionLayer(c, hasRelativeBias));
        if (decoder) layer.Add(new T5CrossAttentionLayer(c));
        layer.Add(new T5FeedForwardLayer(c));
        RegisterComponents();
    }

    public T5SelfAttentionLayer Self => (T5SelfAttentionLayer)layer[0];
    public T5CrossAttentionLayer? Cross => _decoder ? (T5CrossAttentionLayer)layer[1] : null;
    public T5FeedForwardLayer FeedForward => (T5FeedForwardLayer)layer[_decoder ? 2 : 1];

    /// <summary>
    /// The block on <paramref name="h"/> [B, T, d_model]: self-attention with <paramref name="selfBias"/> (its keys
    /// and values appended to <paramref name="cache"/>'s layer <paramref name="index"/> when given), then in a
    /// decoder cross-attention over <paramref name="encoderOutput"/> (computed once per cache), then feed-forward.
    /// </summary>
    public Tensor Forward(Tensor h, Tensor selfBias, Tensor? encoderOutput = null, Tensor? crossBias = null, T5DecoderCache? cache = null, int index = 0)
    {
        var normed = Self.layer_norm.forward(h);
        var (keys, values) = Self.SelfAttention.KeysValues(normed);
        if (cache is not null) (keys, values) = cache.AppendSelf(index, keys, values);
        h = h + Self.SelfAttention.Attend(normed, keys, values, selfBias);
        if (Cross is { } cross)
        {
            var crossNormed = cross.layer_norm.forward(h);
            var (crossKeys, crossValues) = cache?.Cross(index) ?? cross.EncDecAttention.KeysValues(encoderOutput!);
            cache?.KeepCross(index, crossKeys, crossValues);
            h = h + cross.EncDecAttention.Attend(crossNormed, crossKeys, crossValues, crossBias!);
        }
        return FeedForward.Apply(h);
    }
}
