using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>HF's <c>LlamaModel</c> (the <c>model.</c> prefix): embeddings, decoder layers, final norm.</summary>
public sealed class LlamaModel : nn.Module
{
    public Embedding embed_tokens;
    public ModuleList<LlamaDecoderLayer> layers;
    public RmsNorm norm;
    readonly RotaryEmbedding _rotary;

    public LlamaModel(LlamaConfig c) : base(nameof(LlamaModel))
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(c)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        _rotary = new RotaryEmbedding(c.HeadDim, c.RopeTheta);
        RegisterComponents();
    }

    /// <summary>
    /// Runs the decoder. <paramref name="onLayerOutput"/> (optional) sees the embeddings (index -1) and
    /// each layer's output hidden state, for side networks. Returns the final normalised hidden states
    /// [batch, seq, hidden].
    /// </summary>
    public Tensor Forward(Tensor inputIds, KvCache? cache = null, Action<int, Tensor>? onLayerOutput = null)
    {
        var h = embed_tokens.call(inputIds);
        long start = cache?.Length ?? 0;
        var (cos, sin) = _rotary.Table(start, inputIds.shape[1], h.device, h.dtype);
        onLayerOutput?.Invoke(-1, h);
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i].Forward(h, cos, sin, cache, i, start);
            onLayerOutput?.Invoke(i, h);
        }
        return norm.call(h);
    }

    /// <summary>cos/sin tables for positions [start, start + length), for side networks that share this model's RoPE.</summary>
    public (Tensor Cos, Tensor Sin) RotaryTable(long start, long length, Device device, ScalarType dtype) => _rotary.Table(start, length, device, dtype);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}
