using LoraShell.Core.Models.T5;
using static TorchSharp.torch;

namespace LoraShell.Core.SideTuning;

/// <summary>
/// A T5 model and the ladder side network beside it, if any, composed in this one place: training
/// (the tuners), scoring, evaluation and generation all encode and decode through it, so the side
/// network always runs beside both stacks the same way.
/// </summary>
public sealed class EncoderDecoderPass
{
    public EncoderDecoderPass(T5ForConditionalGeneration model, T5LadderSideNetwork? side = null)
    {
        Model = model;
        Side = side;
    }

    public T5ForConditionalGeneration Model { get; }
    public T5LadderSideNetwork? Side { get; }
    public Device Device => Model.shared.weight!.device;

    /// <summary>The source's encoding (the side encoder's too, with a side network); mask: 1 for tokens, 0 for padding.</summary>
    public T5Encoding Encode(Tensor inputIds, Tensor? mask = null)
        => Side?.Encode(Model, inputIds, mask) ?? new T5Encoding(Model.Encode(inputIds, mask), null, mask);

    /// <summary>The decoder's final hidden states; with caches, <paramref name="decoderIds"/> continue the tokens they hold.</summary>
    public Tensor DecoderHidden(Tensor decoderIds, T5Encoding encoding, DecoderCaches? caches = null)
        => Side?.DecoderHidden(Model, decoderIds, encoding, caches?.Backbone, caches?.Side)
           ?? Model.DecoderHidden(decoderIds, encoding.Backbone, encoding.Mask, caches?.Backbone);

    /// <summary>Vocabulary logits [B, T, vocab] of the decoder reading <paramref name="decoderIds"/>.</summary>
    public Tensor Logits(Tensor decoderIds, T5Encoding encoding, DecoderCaches? caches = null) => Model.Head(DecoderHidden(decoderIds, encoding, caches));

    /// <summary>
    /// Cross-entropy of <paramref name="labels"/> [B, T] given the encoded sources, teacher-forced as transformers'
    /// T5ForConditionalGeneration computes its loss: labels of -100 are not scored.
    /// </summary>
    public Tensor TargetLoss(T5Encoding encoding, Tensor labels, nn.Reduction reduction = nn.Reduction.Mean)
    {
        var logits = Logits(Model.ShiftRight(labels), encoding).to(ScalarType.Float32);
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), labels.reshape(-1), ignore_index: -100, reduction: reduction);
    }

    /// <summary>Empty key/value caches for the backbone decoder and, with a side network, the side decoder.</summary>
    public DecoderCaches NewCaches() => new(new T5DecoderCache(Model.Config.NumDecoderLayers), Side is null ? null : new T5DecoderCache(Side.DecoderLayers.Count));

    /// <summary>The decoder caches of one generation: the backbone's and the side decoder's.</summary>
    public sealed record DecoderCaches(T5DecoderCache Backbone, T5DecoderCache? Side) : IDisposable
    {
        public void Dispose() { Backbone.Dispose(); Side?.Dispose(); }
    }
}
