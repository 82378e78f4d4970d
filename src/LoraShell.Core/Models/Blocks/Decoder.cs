using LoraShell.Core.Models.Families;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// The backbone (HF's <c>model.</c> or <c>transformer.</c>): token embeddings, learned positions when the
/// family has them, the decoder layers and the final norm, registered under the family's names.
/// </summary>
public sealed class Decoder : nn.Module, IEmbeddingHost
{
    readonly Embedding _embed;
    readonly string _embedName;
    nn.Module<Tensor, Tensor> _lookup; // the embedding itself, or a wrapper around it (LoRA on the embedding)
    readonly Embedding? _positions;
    readonly ModuleList<DecoderLayer> _layers;
    readonly nn.Module<Tensor, Tensor> _norm;
    readonly RotaryEmbedding? _rotary;

    public Decoder(ModelConfig c, WeightFormat? format = null) : base(nameof(Decoder))
    {
        var l = c.Family.Layout;
        format ??= WeightFormat.Default;
        _embed = nn.Embedding(c.VocabSize, c.HiddenSize, dtype: format.DType);
        _embedName = l.Embedding;
        _lookup = _embed;
        register_module(l.Embedding, _embed);
        if (l.PositionEmbedding is string wpe)
        {
            _positions = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize, dtype: format.DType);
            register_module(wpe, _positions);
        }
        _layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new DecoderLayer(c, i, format)).ToArray());
        register_module(l.Layers, _layers);
        _norm = Norms.Create(c, c.HiddenSize, format.DType);
        register_module(l.FinalNorm, _norm);
        if (l.Positions == PositionKind.Rotary) _rotary = new RotaryEmbedding(c);
        MaxPositions = c.MaxPositionEmbeddings;
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    /// <summary>The token embedding's weight (a tied head's too), whatever wraps its lookup.</summary>
    public Embedding Embedding => _embed;

    /// <summary>What turns ids into embeddings: <see cref="Embedding"/> itself, or the module that wraps it.</summary>
    public nn.Module<Tensor, Tensor> EmbeddingLookup => _lookup;

    /// <summary>Puts <paramref name="lookup"/> (a wrapper of <see cref="Embedding"/>, or the embedding itself again) under the embedding's HF name.</summary>
    public void ReplaceEmbeddingLookup(nn.Module<Tensor, Tensor> lookup)
    {
        register_module(_embedName, null!);
        register_module(_embedName, lookup);
        _lookup = lookup;
    }
    public IList<DecoderLayer> Layers => _layers;
    public nn.Module<Tensor, Tensor> FinalNorm => _norm;
    int MaxPositions { get; }

    /// <summary>
    /// Keep only each layer's input while a graph is recorded and recompute the layer in backward
    /// (<see cref="LayerRecompute"/>): activation memory of one layer instead of all, for one extra
    /// forward. Has no effect without autograd (inference, a frozen backbone) or with a KV cache.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>
    /// Runs the decoder. <paramref name="onLayerOutput"/> (optional) sees the embeddings (index -1) and
    /// each layer's output hidden state, for side networks. Returns the final normalised hidden states
    /// [batch, seq, hidden]. With <paramref name="packed"/>, each row holds several documents, each read
    /// as if alone (its own positions, attention within it only).
    /// </summary>
    public Tensor Forward(Tensor inputIds, KvCache? cache = null, Action<int, Tensor>? onLayerOutput = null, PackedLayout? packed = null)
    {
        if (packed is not null && cache is not null) throw new ArgumentException("Packed rows are for training and scoring; decoding with a cache reads one sequence per row.");
        long start = cache?.Length ?? 0, length = inputIds.shape[1];
        var h = _lookup.call(inputIds);
        if (_positions is not null)
        {
            if (start + length > MaxPositions)
                throw LoraShellException.InvalidArgument("SequenceTooLong", $"Positions up to {start + length} were asked for; this model has {MaxPositions} learned positions.", start + length);
            h = h + _positions.call(packed?.Positions ?? arange(start, start + length, device: inputIds.device));
        }
        var rotary = packed is null ? RotaryTable(start, length, h.device, h.dtype) : RotaryTable(packed, h.dtype);
        onLayerOutput?.Invoke(-1, h);
        bool recompute = GradientCheckpointing && cache is null && is_grad_enabled();
        for (int i = 0; i < _layers.Count; i++)
        {
            h = recompute ? LayerRecompute.Run(_layers[i], h, rotary, packed?.Mask) : _layers[i].Forward(h, rotary, cache, start, packed?.Mask);
            onLayerOutput?.Invoke(i, h);
        }
        return _norm.call(h);
    }

    /// <summary>cos/sin tables for positions [start, start + length) (null with learned positions), for side networks that share this model's RoPE.</summary>
    public (Tensor Cos, Tensor Sin)? RotaryTable(long start, long length, Device device, ScalarType dtype)
        => _rotary?.Table(start, length, device, dtype);

    /// <summary>cos/sin for packed rows, [batch, 1, seq, rotaryDim]: each token at its position inside its document.</summary>
    public (Tensor Cos, Tensor Sin)? RotaryTable(PackedLayout packed, ScalarType dtype)
    {
        if (_rotary is null) return null;
        long batch = packed.Positions.shape[0], seq = packed.Positions.shape[1];
        // As transformers with position_ids: the table spans the longest document's positions (dynamic NTK scales by that length).
        long span = packed.Positions.max().item<long>() + 1;
        var (cos, sin) = _rotary.Table(0, span, packed.Positions.device, dtype);
        var flat = packed.Positions.flatten();
        return (cos.index_select(0, flat).view(batch, 1, seq, -1), sin.index_select(0, flat).view(batch, 1, seq, -1));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary?.Dispose();
        base.Dispose(disposing);
    }
}
