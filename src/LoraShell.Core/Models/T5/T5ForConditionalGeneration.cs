using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// T5 as transformers' T5ForConditionalGeneration computes it: the encoder reads the input with
/// bidirectional relative position bias, the decoder reads the target shifted right behind
/// decoder_start_token_id with causal bias and cross-attention to the encoder's output, and the head is
/// the shared embedding (its input rescaled by d_model^-0.5) or an untied lm_head. Module names are HF's,
/// so state dicts load and save under the checkpoint's own names.
/// </summary>
public sealed class T5ForConditionalGeneration : nn.Module, IAdaptableModel, IEmbeddingHost
{
    public const string SharedName = "shared";
    readonly Embedding _shared;
    nn.Module<Tensor, Tensor> _lookup; // the shared embedding, or a wrapper around it (LoRA on the embedding)
    public T5Stack encoder, decoder;
    public LinearProjection? lm_head;

    public T5Config Config { get; }

    public T5ForConditionalGeneration(T5Config config) : base(nameof(T5ForConditionalGeneration))
    {
        Config = config;
        _shared = nn.Embedding(config.VocabSize, config.DModel);
        _lookup = _shared;
        register_module(SharedName, _shared);
        encoder = new T5Stack(config, decoder: false);
        register_module(nameof(encoder), encoder);
        decoder = new T5Stack(config, decoder: true);
        register_module(nameof(decoder), decoder);
        if (!config.TieWordEmbeddings)
        {
            lm_head = new LinearProjection(config.DModel, config.VocabSize, hasBias: false);
            register_module(nameof(lm_head), lm_head);
        }
    }

    // Children are registered explicitly under their HF names, so a wrapped embedding can take "shared".
    protected override void RegisterComponents() { }

    /// <summary>The shared token embedding (both stacks' input, and a tied head's weight), whatever wraps its lookup.</summary>
    public Embedding shared => _shared;

    public nn.Module<Tensor, Tensor> EmbeddingLookup => _lookup;

    public void ReplaceEmbeddingLookup(nn.Module<Tensor, Tensor> lookup)
    {
        register_module(SharedName, null!);
        register_module(SharedName, lookup);
        _lookup = lookup;
    }

    // ---- IAdaptableModel: PEFT's view of T5 (module paths as in transformers' T5ForConditionalGeneration).
    nn.Module IAdaptableModel.Module => this;

    public IReadOnlyList<string> DefaultLoraTargets => new[] { "q", "v" };

    public string ConfigFingerprint => Config.ToJson();

    public string PeftTaskType => "SEQ_2_SEQ_LM";

    /// <summary>Every projection of both stacks, encoder first (PEFT's layer index is the block's number in its stack).</summary>
    public IEnumerable<LinearSlot> LinearSlots()
    {
        foreach (var (stackName, stack) in new[] { ("encoder", encoder), ("decoder", decoder) })
            for (int i = 0; i < stack.block.Count; i++)
            {
                var b = stack.block[i];
                string prefix = $"{stackName}.block.{i}.layer";
                foreach (var (name, module) in b.Self.SelfAttention.Projections)
                    yield return new LinearSlot($"{prefix}.0.SelfAttention.{name}", name, module, b.Self.SelfAttention, i);
                if (b.Cross is { } cross)
                    foreach (var (name, module) in cross.EncDecAttention.Projections)
                        yield return new LinearSlot($"{prefix}.1.EncDecAttention.{name}", name, module, cross.EncDecAttention, i);
                int ff = b.Cross is null ? 1 : 2;
                foreach (var (name, module) in b.FeedForward.DenseReluDense.Projections)
                    yield return new LinearSlot($"{prefix}.{ff}.DenseReluDense.{name}", name, module, b.FeedForward.DenseReluDense, i);
            }
    }

    public EmbeddingSlot EmbeddingSlot() => new(SharedName, SharedName, _shared, _lookup, this);

    public IEnumerable<QuantizedProjection> QuantizedProjections() => Enumerable.Empty<QuantizedProjection>();

    public WeightFormat Format => WeightFormat.Default;

    public int LayerCount => Math.Max(Config.NumLayers, Config.NumDecoderLayers);

    public bool TieWordEmbeddings => Config.TieWordEmbeddings;

    public bool FanInFanOut => false;

    public bool UntieHead() => throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5",
        "modules_to_save with the tied head (lm_head) of a T5 model is not supported yet; save the shared embedding or an untied model's lm_head.", "lm_head");

    public bool RetieHead() => false;

    /// <summary>The probe read as both the source and the decoder's input (teacher forcing).</summary>
    public Tensor ProbeLogits(long[] ids)
    {
        var input = tensor(ids, device: _shared.weight!.device).unsqueeze(0);
        return Logits(input, input);
    }

    public (int VocabSize, int MaxProbeLength, int StartToken) ProbeShape => (Config.VocabSize, 32, Config.DecoderStartTokenId);

    /// <summary>The encoder's output [B, S, d_model] for <paramref name="inputIds"/> [B, S] (mask: 1 for tokens, 0 for padding).</summary>
    /// <param name="layerOutput">hears the embeddings (layer -1) and each block's output, for a side network</param>
    public Tensor Encode(Tensor inputIds, Tensor? attentionMask = null, Action<int, Tensor>? layerOutput = null)
    {
        using var scope = NewDisposeScope();
        var h = _lookup.forward(inputIds);
        var bias = encoder.SelfBias(inputIds.shape[1], 0, attentionMask, h.dtype, h.device);
        return encoder.Forward(h, bias, layerOutput: layerOutput).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The decoder's final hidden states [B, T, d_model] for <paramref name="decoderIds"/> [B, T] over the
    /// encoder's output. With a cache, <paramref name="decoderIds"/> continue the tokens the cache has seen:
    /// their keys and values are appended, and the cross-attention keys and values are computed once.
    /// </summary>
    public Tensor DecoderHidden(Tensor decoderIds, Tensor encoderOutput, Tensor? encoderMask = null, T5DecoderCache? cache = null, Action<int, Tensor>? layerOutput = null)
    {
        using var scope = NewDisposeScope();
        var h = _lookup.forward(decoderIds);
        var selfBias = decoder.SelfBias(decoderIds.shape[1], cache?.Length ?? 0, null, h.dtype, h.device);
        var crossBias = T5Stack.CrossBias(encoderMask, h.dtype, h.device);
        var final = decoder.Forward(h, selfBias, encoderOutput, crossBias, cache, layerOutput);
        cache?.Advance(decoderIds.shape[1]);
        return final.MoveToOuterDisposeScope();
    }

    /// <summary>Vocabulary logits of decoder hidden states: the untied lm_head, or the shared embedding after the d_model^-0.5 rescale.</summary>
    public Tensor Head(Tensor hidden)
        => lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden * Math.Pow(Config.DModel, -0.5), _shared.weight!);

    /// <summary>Logits [B, T, vocab] of the decoder reading <paramref name="decoderIds"/> (see <see cref="DecoderHidden"/>).</summary>
    public Tensor Decode(Tensor decoderIds, Tensor encoderOutput, Tensor? encoderMask = null, T5DecoderCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return Head(DecoderHidden(decoderIds, encoderOutput, encoderMask, cache)).MoveToOuterDisposeScope();
    }

    /// <summary>Logits for a source and a decoder input (teacher forcing).</summary>
    public Tensor Logits(Tensor inputIds, Tensor decoderIds, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        return Decode(decoderIds, Encode(inputIds, attentionMask), attentionMask).MoveToOuterDisposeScope();
    }

    /// <summary>The decoder's input for <paramref name="labels"/>: decoder_start_token_id, then the labels but the last, -100 read as pad.</summary>
    public Tensor ShiftRight(Tensor labels)
    {
        using var scope = NewDisposeScope();
        var start = full(labels.shape[0], 1, (long)Config.DecoderStartTokenId, dtype: ScalarType.Int64, device: labels.device);
        var shifted = cat(new[] { start, labels[.., ..^1] }, 1);
        return shifted.masked_fill(shifted == -100, Config.PadTokenId).MoveToOuterDisposeScope();
    }

    /// <summary>Logits and the mean cross-entropy over the labels that are not -100, as T5ForConditionalGeneration's loss.</summary>
    public (Tensor Logits, Tensor Loss) LogitsAndLoss(Tensor inputIds, Tensor labels, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        var logits = Logits(inputIds, ShiftRight(labels), attentionMask);
        var loss = nn.functional.cross_entropy(logits.to(ScalarType.Float32).view(-1, logits.shape[^1]), labels.view(-1), ignore_index: -100);
        return (logits.MoveToOuterDisposeScope(), loss.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// The decoder's keys and values during generation: each layer's self-attention keys and values grow by
/// the tokens decoded, the cross-attention ones are the encoder output's, computed on the first step.
/// </summary>
public sealed class T5DecoderCache : IDisposable
{
    readonly Tensor?[] _selfKeys, _selfValues, _crossKeys, _crossValues;

    public T5DecoderCache(int layers)
    {
        _selfKeys = new Tensor?[layers];
        _selfValues = new Tensor?[layers];
        _crossKeys = new Tensor?[layers];
        _crossValues = new Tensor?[layers];
    }

    /// <summary>Tokens decoded so far.</summary>
    public long Length { get; private set; }

    public (Tensor Keys, Tensor Values) AppendSelf(int layer, Tensor keys, Tensor values)
    {
        var k = _selfKeys[layer] is { } oldK ? cat(new[] { oldK, keys }, 2) : keys.alias();
        var v = _selfValues[layer] is { } oldV ? cat(new[] { oldV, values }, 2) : values.alias();
        _selfKeys[layer]?.Dispose();
        _selfValues[layer]?.Dispose();
        _selfKeys[layer] = k.DetachFromDisposeScope();
        _selfValues[layer] = v.DetachFromDisposeScope();
        return (k.alias(), v.alias());
    }

    public (Tensor Keys, Tensor Values)? Cross(int layer) => _crossKeys[layer] is { } k ? (k.alias(), _crossValues[layer]!.alias()) : null;

    public void KeepCross(int layer, Tensor keys, Tensor values)
    {
        if (_crossKeys[layer] is not null) return;
        _crossKeys[layer] = keys.alias().DetachFromDisposeScope();
        _crossValues[layer] = values.alias().DetachFromDisposeScope();
    }

    public void Advance(long tokens) => Length += tokens;

    public void Dispose()
    {
        foreach (var t in _selfKeys.Concat(_selfValues).Concat(_crossKeys).Concat(_crossValues)) t?.Dispose();
    }
}
