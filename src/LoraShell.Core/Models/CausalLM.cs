using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Models.Families;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>One swappable projection of the model: its full HF module path, the layer and its owner.</summary>
public sealed record LinearSlot(string Path, string Name, nn.Module<Tensor, Tensor> Module, ILinearHost Host, int LayerIndex);

/// <summary>The token embedding at its HF path (<c>model.embed_tokens</c>, <c>transformer.wte</c>): its base module and what computes the lookup now.</summary>
public sealed record EmbeddingSlot(string Path, string Name, TorchSharp.Modules.Embedding Base, nn.Module<Tensor, Tensor> Module, IEmbeddingHost Host);

/// <summary>
/// A decoder-only causal LM of any supported family, laid out exactly like its transformers class
/// (CausalLM, Qwen3ForCausalLM, GPT2LMHeadModel, …), so its state-dict names are HF's. With
/// tied embeddings there is no <c>lm_head</c>: logits use the token embedding.
/// </summary>
public sealed class CausalLM : nn.Module<Tensor, Tensor>, IAdaptableModel
{
    readonly Decoder _decoder;
    Linear? _head;

    /// <param name="format">dtype and quantization of the weights (default: float32, dense, randomly initialised)</param>
    public CausalLM(ModelConfig config, WeightFormat? format = null) : base(config.Family.Architecture)
    {
        config.Validate("model construction");
        format ??= WeightFormat.Default;
        format.Validate();
        Config = config;
        Family = config.Family;
        Format = format;
        _decoder = new Decoder(config, format);
        register_module(Family.Layout.Backbone, _decoder);
        if (!config.TieWordEmbeddings)
        {
            _head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, dtype: format.DType);
            register_module(FamilyLayout.Head, _head);
        }
    }

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public ModelConfig Config { get; private set; }
    public ModelFamily Family { get; }
    /// <summary>How the weights were built: dtype and quantization of the decoder's projections.</summary>
    public WeightFormat Format { get; }
    /// <summary>The backbone: embeddings, layers, final norm.</summary>
    public Decoder Decoder => _decoder;
    public Device Device => _decoder.Embedding.weight!.device;
    public ScalarType DType => _decoder.Embedding.weight!.dtype;
    /// <summary>The output head's weight [vocab, hidden] (the embedding when tied).</summary>
    public Tensor HeadWeight => _head?.weight ?? _decoder.Embedding.weight!;

    /// <summary>Logits [batch, seq, vocab] for token ids [batch, seq].</summary>
    public override Tensor forward(Tensor inputIds) => Logits(_decoder.Forward(inputIds));

    /// <summary>Logits of rows that pack several documents, each read as if alone (<see cref="PackedLayout"/>).</summary>
    public Tensor Forward(Tensor inputIds, PackedLayout? packed) => Logits(_decoder.Forward(inputIds, packed: packed));

    /// <summary>Logits for the new positions, appending their keys/values to <paramref name="cache"/>.</summary>
    public Tensor Forward(Tensor inputIds, KvCache? cache) => Logits(_decoder.Forward(inputIds, cache));

    /// <summary>Projects final hidden states to vocabulary logits (a tied head sees rows a token adapter replaced in the embedding).</summary>
    public Tensor Logits(Tensor hidden)
    {
        var logits = nn.functional.linear(hidden, HeadWeight);
        return _head is null && _decoder.EmbeddingLookup is ITiedHeadRows rows ? rows.OnTiedHead(hidden, logits) : logits;
    }

    public KvCache NewCache() => new(Config.NumHiddenLayers);

    /// <summary>
    /// Gives a tied model an output head of its own, a copy of the embedding (what PEFT's deepcopy of a tied
    /// module in modules_to_save amounts to): from now on the head and the embedding are separate weights and
    /// the config says so (an export writes lm_head). Returns false when the head was separate already.
    /// </summary>
    public bool UntieHead()
    {
        if (_head is not null) return false;
        var head = nn.Linear(Config.HiddenSize, Config.VocabSize, hasBias: false, device: Device, dtype: DType);
        using (no_grad()) head.weight!.copy_(_decoder.Embedding.weight!);
        head.weight!.requires_grad = false;
        head.train(training);
        register_module(FamilyLayout.Head, head);
        _head = head;
        Config = Config with { TieWordEmbeddings = false };
        return true;
    }

    /// <summary>Ties the head to the embedding again, when it is a separate weight equal to the embedding element for element; returns whether it did.</summary>
    public bool RetieHead()
    {
        if (_head is null) return false;
        using (var scope = NewDisposeScope())
            if (!_head.weight!.eq(_decoder.Embedding.weight!).all().item<bool>()) return false;
        register_module(FamilyLayout.Head, null!);
        _head.Dispose();
        _head = null;
        Config = Config with { TieWordEmbeddings = true };
        return true;
    }

    /// <summary>The quantized projections (empty for a dense model).</summary>
    public IEnumerable<QuantizedProjection> QuantizedProjections()
        => LinearSlots().Select(s => ProjectionSlots.BaseOf(s.Module)).OfType<QuantizedProjection>();

    /// <summary>Weights counted as the model has them: parameters plus the weights held quantized.</summary>
    public long WeightCount => parameters().Sum(p => p.numel()) + QuantizedProjections().Where(q => q.IsQuantized).Sum(q => q.InFeatures * q.OutFeatures);

    /// <summary>Bytes the weights take: parameters at their element size plus quantized codes and statistics.</summary>
    public long WeightBytes => parameters().Sum(p => p.numel() * p.element_size()) + QuantizedProjections().Sum(q => q.QuantizedBytes);

    /// <summary>Every projection inside the decoder layers (not the output head), in layer order.</summary>
    public IEnumerable<LinearSlot> LinearSlots()
    {
        var l = Family.Layout;
        for (int i = 0; i < _decoder.Layers.Count; i++)
        {
            var layer = _decoder.Layers[i];
            foreach (var (name, module) in layer.Attention.Projections)
                yield return new LinearSlot($"{l.LayerPrefix(i)}{l.Attention}.{name}", name, module, layer.Attention, i);
            foreach (var (name, module) in layer.FeedForward.Projections)
                yield return new LinearSlot($"{l.LayerPrefix(i)}{l.FeedForward}.{name}", name, module, layer.FeedForward, i);
        }
    }

    /// <summary>The token embedding, which LoRA may wrap too (PEFT's lora.Embedding).</summary>
    public EmbeddingSlot EmbeddingSlot()
        => new($"{Family.Layout.Backbone}.{Family.Layout.Embedding}", Family.Layout.Embedding, _decoder.Embedding, _decoder.EmbeddingLookup, _decoder);

    nn.Module IAdaptableModel.Module => this;

    public IReadOnlyList<string> DefaultLoraTargets => new[] { "q_proj", "v_proj" };

    public string ConfigFingerprint => Config.ToJson("any");

    public string PeftTaskType => "CAUSAL_LM";
    public int LayerCount => Config.NumHiddenLayers;
    public bool TieWordEmbeddings => Config.TieWordEmbeddings;
    public bool FanInFanOut => Family.Layout.Storage == ProjectionStorage.Conv1D;
    public Tensor ProbeLogits(long[] ids) => forward(tensor(ids, device: Device).unsqueeze(0));
    public (int VocabSize, int MaxProbeLength, int StartToken) ProbeShape => (Config.VocabSize, Config.MaxPositionEmbeddings, Config.BosTokenId);

    /// <summary>The projection module at an HF path such as <c>model.layers.0.self_attn.q_proj</c>.</summary>
    public nn.Module<Tensor, Tensor> Module(string path)
        => LinearSlots().FirstOrDefault(s => s.Path == path)?.Module
           ?? throw LoraShellException.NotFound("ModuleNotFound", $"The model has no projection '{path}'.", path);
}
