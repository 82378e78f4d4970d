using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>Pre-norm decoder block of every family: x + attn(norm1(x)), then h + mlp(norm2(h)).</summary>
public sealed class DecoderLayer : nn.Module
{
    readonly nn.Module<Tensor, Tensor> _inputNorm, _postAttentionNorm;

    public DecoderLayer(ModelConfig c, int layer, WeightFormat? format = null) : base(nameof(DecoderLayer))
    {
        var l = c.Family.Layout;
        format ??= WeightFormat.Default;
        // Creation order (norm, attention, norm, MLP) fixes the order random initialisations draw in.
        _inputNorm = Norms.Create(c, c.HiddenSize, format.DType);
        Attention = new Attention(c, layer, format);
        _postAttentionNorm = Norms.Create(c, c.HiddenSize, format.DType);
        FeedForward = new FeedForward(c, format);
        register_module(l.InputNorm, _inputNorm);
        register_module(l.Attention, Attention);
        register_module(l.PostAttentionNorm, _postAttentionNorm);
        register_module(l.FeedForward, FeedForward);
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public Attention Attention { get; }
    public FeedForward FeedForward { get; }
    public nn.Module<Tensor, Tensor> InputNorm => _inputNorm;
    public nn.Module<Tensor, Tensor> PostAttentionNorm => _postAttentionNorm;

    /// <param name="packed">the block-diagonal mask of rows that pack several documents (<see cref="PackedLayout"/>), or null</param>
    public Tensor Forward(Tensor x, (Tensor Cos, Tensor Sin)? rotary, KvCache? cache, long past, Tensor? packed = null)
    {
        // Intermediate handles die with the layer; autograd keeps its own references to what backward
        // needs. Without the scope every temporary of every layer would live until the step ends.
        using var scope = NewDisposeScope();
        var h = x + Attention.Forward(_inputNorm.call(x), rotary, cache, past, packed);
        return (h + FeedForward.Forward(_postAttentionNorm.call(h))).MoveToOuterDisposeScope();
    }
}
