using LoraShell.Core.Models.T5;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;

namespace LoraShell.Core.Memory;

/// <summary>
/// Training memory of a T5 model trained text-to-text, counted as <see cref="MemoryEstimator"/> counts a
/// decoder's: weights, gradients and AdamW states per trainable weight, and the activations backward keeps,
/// tensor by tensor, for the encoder's blocks over the input (-SequenceLength) and the decoder's over the
/// target (TargetLength), with T5's eager attention (scores, scores plus position bias, probabilities), the
/// decoder's cross-attention over the input, and the float32 logits, log-softmax and gradient of the loss.
/// Ladder keeps no backbone activation: the ladders' inputs, the side stacks at width d/k, and one backbone
/// block's intermediates while the no-grad pass runs.
/// </summary>
public static class T5MemoryEstimator
{
    public static MemoryEstimate Estimate(T5Config c, MemoryEstimateOptions o, string modelName = "")
    {
        MemoryEstimator.Validate(o);
        if (o.Quantization != Models.Quantization.BaseQuantization.None || o.Precision is TrainingPrecision.Int8Base or TrainingPrecision.Int4Base)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5", "Quantized bases are for decoder-only models so far; estimate a T5 model with -Precision Fp32 or Bf16Mixed.", o.Quantization);
        if (o.ActivationCheckpointing)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5", "T5's blocks do not recompute yet; estimate without -ActivationCheckpointing.", o.ActivationCheckpointing);
        if (o.TargetLength is < 1) throw LoraShellException.InvalidArgument("InvalidTargetLength", $"Target length must be at least 1 (got {o.TargetLength}).", o.TargetLength);
        double act = o.Precision == TrainingPrecision.Fp32 ? 4 : 2;
        long total = Parameters(c);
        long trainable = o.Method switch
        {
            TrainingMethod.Full => total,
            TrainingMethod.Lora => LoraParameters(c, o.LoraRank, o.LoraTargets),
            _ => SideParameters(c, o),
        };
        double dense = act;
        double frozen = o.Method == TrainingMethod.Full ? 0 : dense * total;
        double s = o.SequenceLength, t = o.TargetLength ?? o.SequenceLength, b = o.BatchSize;
        double loss = b * t * c.VocabSize * (act + 4 + 4); // logits, float32 log-softmax and its gradient
        var sized = MemoryEstimator.Sized(modelName, o, total, trainable, frozen, b * ActivationElements(c, o, s, t) * act + loss);
        // Full: at the start of backward only the head's gradient (the shared embedding's, when tied) exists.
        double headShare = o.Method == TrainingMethod.Full ? (double)c.VocabSize * c.DModel / trainable : 1;
        return sized with { GradientBytesAtPeak = sized.GradientBytes * headShare, Notes = sized.Notes + $" Input {s:N0} and target {t:N0} tokens." };
    }

    /// <summary>Activation elements per example (input <paramref name="s"/> tokens, target <paramref name="t"/>).</summary>
    static double ActivationElements(T5Config c, MemoryEstimateOptions o, double s, double t)
    {
        if (o.Method == TrainingMethod.Ladder)
        {
            var side = SideShape(c, o);
            var (le, ld) = FedLayers(c, o);
            double ds = side.DModel;
            // The ladders' inputs (embeddings and fed outputs of both stacks), the backbone encoder's output the
            // decoder reads, the side stacks with their gate mixes, their final norms, the up-projection and the
            // sum it makes; and one backbone block's intermediates while the no-grad pass runs it.
            double encoder = s * ((le + 1) * c.DModel + c.DModel + le * (EncoderBlock(side, s) + 2 * ds) + 2 * ds);
            double decoder = t * ((ld + 1) * c.DModel + ld * (DecoderBlock(side, s, t) + 2 * ds) + 2 * ds + ds + 2 * c.DModel)
                + ld * s * 2.0 * side.InnerDim;
            return encoder + decoder + s * EncoderBlock(c, s);
        }
        double lora = o.Method == TrainingMethod.Lora ? o.LoraRank : 0;
        var targets = o.Method == TrainingMethod.Lora ? Targets(c, o.LoraTargets) : new HashSet<string>();
        double Adapted(params string[] names) => names.Count(targets.Contains) * lora;
        string[] ff = c.GatedFeedForward ? new[] { "wi_0", "wi_1", "wo" } : new[] { "wi", "wo" };
        // LoRA: backward through a frozen projection needs its weight, not its input, so the attention's mixed
        // heads (o's input) and the feed-forward's first input are not kept unless an adapter there needs them.
        bool frozen = o.Method == TrainingMethod.Lora;
        double FrozenSaving(bool cross) => !frozen ? 0 : (targets.Contains("o") ? 0 : 2.0 * c.InnerDim) * (cross ? 2 : 1)
            + (targets.Overlaps(ff[..^1]) ? 0 : c.DFf);
        double encoderToken = EncoderBlock(c, s) + Adapted("q", "k", "v", "o") + Adapted(ff) - FrozenSaving(false);
        double decoderToken = DecoderBlock(c, s, t) + 2 * Adapted("q", "k", "v", "o") - Adapted("k", "v") + Adapted(ff) - FrozenSaving(true);
        double crossSource = 2.0 * c.InnerDim + Adapted("k", "v"); // the cross-attention's keys and values over the input, per decoder block
        double workspace = (c.GatedFeedForward ? 3.0 : 2.0) * c.DFf + 2.0 * c.DModel;
        return s * (c.NumLayers * encoderToken + 2.0 * c.DModel + workspace)
            + t * (c.NumDecoderLayers * decoderToken + 2.0 * c.DModel + c.DModel)
            + s * c.NumDecoderLayers * crossSource;
    }

    /// <summary>Per input token: norm in and out, q, k, v, scores, scores + bias and probabilities over the input, the mixed heads and their copy; feed-forward norm, projections and activation.</summary>
    static double EncoderBlock(T5Config c, double s)
        => 2.0 * c.DModel + 3.0 * c.InnerDim + 3.0 * c.NumHeads * s + 2.0 * c.InnerDim + FeedForward(c);

    /// <summary>Per target token: causal self-attention over the target, cross-attention's query, scores over the input and mixed heads, feed-forward.</summary>
    static double DecoderBlock(T5Config c, double s, double t)
        => 2.0 * c.DModel + 3.0 * c.InnerDim + 3.0 * c.NumHeads * t + 2.0 * c.InnerDim
           + 2.0 * c.DModel + c.InnerDim + 3.0 * c.NumHeads * s + 2.0 * c.InnerDim + FeedForward(c);

    static double FeedForward(T5Config c) => 2.0 * c.DModel + (c.GatedFeedForward ? 4.0 : 2.0) * c.DFf;

    /// <summary>Every weight: the shared embedding, both stacks (cross-attention in the decoder's blocks), the relative bias tables, an untied head.</summary>
    public static long Parameters(T5Config c)
    {
        long attention = 4L * c.DModel * c.InnerDim, ff = (c.GatedFeedForward ? 3L : 2L) * c.DModel * c.DFf;
        long encoderBlock = attention + ff + 2L * c.DModel, decoderBlock = 2 * attention + ff + 3L * c.DModel;
        long bias = 2L * c.RelativeAttentionNumBuckets * c.NumHeads;
        return (long)c.VocabSize * c.DModel * (c.TieWordEmbeddings ? 1 : 2) + c.NumLayers * encoderBlock + c.NumDecoderLayers * decoderBlock + bias + 2L * c.DModel;
    }

    /// <summary>LoRA r·(in + out) per adapted projection: q, k, v, o in the encoder's self-attention and the decoder's self- and cross-attention; wi (wi_0, wi_1), wo in every feed-forward.</summary>
    public static long LoraParameters(T5Config c, int rank, IReadOnlyList<string> targets)
    {
        var wanted = Targets(c, targets);
        long Count(string name) => !wanted.Contains(name) ? 0 : name switch
        {
            "q" or "k" or "v" or "o" => (long)rank * (c.DModel + c.InnerDim) * (c.NumLayers + 2L * c.NumDecoderLayers),
            _ => (long)rank * (c.DModel + c.DFf) * (c.NumLayers + c.NumDecoderLayers),
        };
        return wanted.Sum(Count);
    }

    static HashSet<string> Targets(T5Config c, IReadOnlyList<string> targets)
    {
        var names = c.GatedFeedForward ? new[] { "q", "k", "v", "o", "wi_0", "wi_1", "wo" } : new[] { "q", "k", "v", "o", "wi", "wo" };
        if (targets.Any(Lora.TargetMatcher.IsAllLinear)) return names.ToHashSet();
        foreach (var t in targets)
            if (!names.Contains(t))
                throw LoraShellException.InvalidArgument("UnknownTarget", $"LoRA target '{t}' is not a Linear module of a T5 model; use all-linear or some of {string.Join(", ", names)}.", t);
        return targets.ToHashSet();
    }

    static T5Config SideShape(T5Config c, MemoryEstimateOptions o)
    {
        var config = new LadderConfig { ReductionFactor = o.ReductionFactor, SideLayers = o.SideLayers };
        T5LadderSideNetwork.Validate(config, c);
        var (le, ld) = FedLayers(c, o);
        return c with { DModel = c.DModel / o.ReductionFactor, DKv = c.DKv / o.ReductionFactor, DFf = Math.Max(1, c.DFf / o.ReductionFactor), NumLayers = le, NumDecoderLayers = ld, VocabSize = 0 };
    }

    static (int Encoder, int Decoder) FedLayers(T5Config c, MemoryEstimateOptions o) => (o.SideLayers?.Count ?? c.NumLayers, o.SideLayers?.Count ?? c.NumDecoderLayers);

    /// <summary>A T5 side network's parameters: its down-projections and gates per ladder, the side stacks (vocabulary-free) and the up-projection.</summary>
    public static long SideParameters(T5Config c, MemoryEstimateOptions o)
    {
        var side = SideShape(c, o);
        var (le, ld) = FedLayers(c, o);
        long downs = (le + 1L + ld + 1L) * c.DModel * side.DModel;
        return downs + le + ld + Parameters(side) + (long)side.DModel * c.DModel;
    }
}
