using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Families;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;

namespace LoraShell.Core.Memory;

/// <summary>
/// Training memory from a model's architecture, for any family: bytes of weights, gradients and AdamW
/// states per precision and method, plus the activations backward needs, counted tensor by tensor for
/// the family's block (what a framework that frees every other temporary keeps alive). Parameter and
/// projection shapes come from the family's own description.
/// </summary>
public static class MemoryEstimator
{
    public static MemoryEstimate Estimate(ModelConfig c, MemoryEstimateOptions o, string modelName = "")
    {
        Validate(o);
        double act = o.Precision == TrainingPrecision.Fp32 ? 4 : 2; // bytes per activation element
        long total = c.ParameterCount;
        long linear = LinearWeights(c);

        long trainable = o.Method switch
        {
            TrainingMethod.Full => total,
            TrainingMethod.Lora => LoraParameters(c, o.LoraRank, LoraTargetNames(c, o.LoraTargets), LoraVariant.For(o.UseDora)) + SavedModuleParameters(c, o.ModulesToSave) + (long)o.TrainableTokens * c.HiddenSize,
            _ => Ladder(c, o).TrainableParameters(c),
        };

        // Frozen weights: quantised formats apply to the decoder's Linear weights only; embeddings,
        // LM head and norms stay in the compute dtype, as bitsandbytes leaves them.
        double dense = o.Precision == TrainingPrecision.Fp32 ? 4 : 2;
        double frozenBytes = o.Method == TrainingMethod.Full ? 0 : FrozenLinearBytes(c, o, dense, linear) + dense * (total - linear + UntiedHeadParameters(c, o));
        var sized = Sized(modelName, o, total, trainable, frozenBytes, ActivationElements(c, o) * act + LossBytes(c, o, act) + DequantizationBytes(c, o, act) + AdapterTransientBytes(c, o));
        return sized with { GradientBytesAtPeak = sized.GradientBytes * GradientShareAtPeak(c, o, trainable) };
    }

    /// <summary>The quantization in effect: the option, or the one a legacy precision implies.</summary>
    public static Models.Quantization.BaseQuantization QuantizationOf(MemoryEstimateOptions o) => o.Precision switch
    {
        TrainingPrecision.Int8Base => Models.Quantization.BaseQuantization.Int8,
        TrainingPrecision.Int4Base => Models.Quantization.BaseQuantization.Nf4,
        _ => o.Quantization,
    };

    /// <summary>Bytes of the frozen decoder projections: dense, or what the quantized weight type says a matrix is stored in.</summary>
    static double FrozenLinearBytes(ModelConfig c, MemoryEstimateOptions o, double dense, long linear)
        => Models.Quantization.QuantizedWeight.CostOf(QuantizationOf(o)) is { } cost
            ? c.NumHiddenLayers * LayerProjections(c).Sum(p => (double)cost.StoredBytes(p.Out, p.In, o.DoubleQuant))
            : dense * linear;

    /// <summary>
    /// Share of the gradients that exist when activations peak. Without checkpointing the peak is the
    /// start of backward, after the loss: only the output head's gradient (the tied embedding's) exists.
    /// With checkpointing it is the recomputation of the first layer, when every gradient but the token
    /// embedding's (if not tied to the head) exists. LoRA's and the side network's gradients are small
    /// and counted whole.
    /// </summary>
    static double GradientShareAtPeak(ModelConfig c, MemoryEstimateOptions o, long trainable)
    {
        if (o.Method != TrainingMethod.Full) return 1;
        double head = (double)c.VocabSize * c.HiddenSize + c.HiddenSize; // head (or tied embedding) and final norm
        if (!o.ActivationCheckpointing) return head / trainable;
        double embedding = c.TieWordEmbeddings ? 0 : (double)c.VocabSize * c.HiddenSize;
        return (trainable - embedding) / trainable;
    }

    /// <summary>
    /// Full fine-tuning from a parameter count alone: weights, gradients and optimizer states; without
    /// the architecture there are no activations to count (the estimate says so in its notes).
    /// </summary>
    public static MemoryEstimate EstimateStates(long parameters, MemoryEstimateOptions o, string modelName = "")
    {
        if (parameters < 1) throw LoraShellException.InvalidArgument("InvalidParameterCount", $"Parameter count must be positive (got {parameters}).", parameters);
        if (o.Method != TrainingMethod.Full)
            throw LoraShellException.InvalidArgument("ArchitectureNeeded",
                $"Estimating {o.Method} needs the architecture (adapter and side-network sizes depend on the layer shapes); give the hidden size and layer count, a config.json, or a preset.", o.Method);
        Validate(o);
        var sized = Sized(modelName, o, parameters, parameters, frozenBytes: 0, activationBytes: 0);
        return sized with { Notes = sized.Notes + " Activations not included: the architecture is unknown." };
    }

    /// <summary>
    /// The estimate from its parts. Per trainable weight: its working copy, its gradient (plus a float32
    /// accumulation buffer in mixed precision), AdamW's two float32 moments (plus float32 master weights
    /// in mixed precision).
    /// </summary>
    internal static MemoryEstimate Sized(string modelName, MemoryEstimateOptions o, long total, long trainable, double frozenBytes, double activationBytes)
    {
        bool mixed = o.Precision != TrainingPrecision.Fp32;
        var estimate = new MemoryEstimate
        {
            Model = modelName, Method = o.Method, Precision = o.Precision, Parameters = total,
            Quantization = o.Method == TrainingMethod.Full ? Models.Quantization.BaseQuantization.None : QuantizationOf(o),
            DoubleQuant = o.DoubleQuant && QuantizationOf(o) == Models.Quantization.BaseQuantization.Nf4, TrainableParameters = trainable,
            BatchSize = o.BatchSize, SequenceLength = o.SequenceLength, ActivationCheckpointing = o.ActivationCheckpointing,
            WeightBytes = frozenBytes + (mixed ? 2 : 4) * (double)trainable,
            GradientBytes = (mixed ? 2 + 4 : 4) * (double)trainable,
            OptimizerBytes = (mixed ? 4 + 8 : 8) * (double)trainable,
            ActivationBytes = activationBytes, GpuMemoryGB = o.GpuMemoryGB,
        };
        return WithGpus(estimate, o);
    }

    /// <summary>
    /// Fewest GPUs N with states/N + activations + overhead ≤ GPU memory: ZeRO-3/FSDP shards weights,
    /// gradients and optimizer states; every GPU runs its own micro-batch, so activations do not shrink.
    /// </summary>
    static MemoryEstimate WithGpus(MemoryEstimate e, MemoryEstimateOptions o)
    {
        double budget = o.GpuMemoryGB * MemoryEstimate.GB - e.ActivationBytes - o.PerGpuOverheadGB * MemoryEstimate.GB;
        if (budget <= 0)
            return e with { Notes = $"One micro-batch's activations ({e.ActivationBytes / MemoryEstimate.GB:F1} GB) do not fit a {o.GpuMemoryGB} GB GPU; use activation checkpointing or a smaller batch/sequence." };
        int gpus = (int)Math.Max(1, Math.Ceiling(e.StateBytes / budget - 1e-9));
        double perGpu = e.StateBytes / gpus + e.ActivationBytes + o.PerGpuOverheadGB * MemoryEstimate.GB;
        string notes = gpus == 1 ? "Fits one GPU." : $"States sharded over {gpus} GPUs (ZeRO-3/FSDP); activations per GPU.";
        return e with { Gpus = gpus, PerGpuGB = perGpu / MemoryEstimate.GB, Notes = notes };
    }

    /// <summary>
    /// Activation elements kept for backward per micro-batch. Per token, a Llama block keeps: the input
    /// and the normed output of each RMSNorm (2h twice), q and k after RoPE (h + kv: multiplying by the
    /// constant cos and sin tables keeps only the tables), v (kv), the attention output and its contiguous copy for o_proj (2h),
    /// and in the MLP gate, up, silu(gate) and their product (4·i); a plain MLP (GPT-2) keeps its input
    /// projection and activation (2·i), and learned positions rotate nothing (q, k once each). The
    /// residual additions keep nothing (their sums are the next norm's input, counted there).
    /// </summary>
    public static double ActivationElements(ModelConfig c, MemoryEstimateOptions o)
    {
        double tokens = (double)o.BatchSize * o.SequenceLength;
        if (o.Method == TrainingMethod.Ladder)
        {
            var ladder = Ladder(c, o);
            var side = ladder.SideModel(c);
            int fed = ladder.Layers(c).Count;
            // No backbone activations kept: only the hidden states handed to the down-projections, the side
            // blocks at width d/k, the gate mixes (2·d/k per block) and the up-projection's input and output.
            // The no-grad backbone pass still holds one layer's intermediates at a time (they live until the
            // layer returns), which is part of the peak.
            double perToken = (fed + 1.0) * c.HiddenSize + fed * (BlockElements(side, o) + 2.0 * side.HiddenSize) + 2.0 * side.HiddenSize + 2.0 * c.HiddenSize
                + BlockElements(c, o);
            return tokens * perToken;
        }
        double lora = o.Method == TrainingMethod.Lora ? AdaptedActivationsPerLayer(c, o) : 0;
        double block = BlockElements(c, o) + lora;
        // With checkpointing each layer keeps its input, and one layer is recomputed at a time. (TorchSharp's
        // custom-function node also allocates a tensor shaped like each layer's output and never writes it:
        // no resident memory on CPU, another h per layer and token on CUDA.)
        double layers = o.ActivationCheckpointing
            ? c.NumHiddenLayers * (double)c.HiddenSize + block
            : c.NumHiddenLayers * block;
        return tokens * (layers + 2.0 * c.HiddenSize + BackwardWorkspace(c)); // final norm's input and output
    }

    /// <summary>
    /// Gradients alive at once inside one block's backward, on top of what the block keeps: the MLP's
    /// intermediate gradients (gate, up and their product, 3·i; a plain MLP 2·i) and the gradients of the
    /// block's output and input (2h).
    /// </summary>
    static double BackwardWorkspace(ModelConfig c)
        => (c.Family.Layout.GatedFeedForward ? 3.0 : 2.0) * c.IntermediateSize + 2.0 * c.HiddenSize;

    static double BlockElements(ModelConfig c, MemoryEstimateOptions o)
    {
        double h = c.HiddenSize, q = (double)c.NumAttentionHeads * c.HeadDim, kv = c.KeyValueDim, i = c.IntermediateSize;
        double attention = 2 * h + q + kv + kv + 2 * q;
        double mlp = 2 * h + (c.Family.Layout.GatedFeedForward ? 4 : 2) * i;
        double scores = o.EagerAttention ? 2.0 * c.NumAttentionHeads * o.SequenceLength : 0; // scores and probabilities per query
        return attention + mlp + scores;
    }

    /// <summary>
    /// Logits buffers at the start of backward: standard cross-entropy holds the logits, a float32
    /// log-softmax and its float32 gradient; a fused loss only logits and their gradient; LoraShell's
    /// chunked loss turns a chunk's float32 logits into their gradient in place (one buffer; a 16-bit
    /// model adds its logits and the gradient cast back).
    /// </summary>
    static double LossBytes(ModelConfig c, MemoryEstimateOptions o, double act)
    {
        double tokens = (double)o.BatchSize * o.SequenceLength;
        double held = o.LossChunkTokens is int chunk ? Math.Min(chunk, tokens) : tokens;
        // Chunking keeps a detached copy of the final hidden states and their gradient besides one chunk's logits.
        double cut = o.LossChunkTokens is null ? 0 : 2 * tokens * c.HiddenSize * act;
        double perLogit = o.FusedCrossEntropy ? 2 * act : o.LossChunkTokens is not null ? (act >= 4 ? 4 : 2 * act + 4) : act + 4 + 4;
        return held * c.VocabSize * perLogit + cut;
    }

    /// <summary>
    /// A quantized projection is dequantized for each matmul (forward, and again in backward) and dropped
    /// after it: the largest one's temporaries (as its weight type states them) are part of the peak, plus
    /// the copy in a 16-bit compute dtype.
    /// </summary>
    static double DequantizationBytes(ModelConfig c, MemoryEstimateOptions o, double act)
    {
        if (o.Method == TrainingMethod.Full || Models.Quantization.QuantizedWeight.CostOf(QuantizationOf(o)) is not { } cost) return 0;
        return LayerProjections(c).Max(p => (double)p.In * p.Out) * (cost.DequantizationBytesPerWeight + (act < 4 ? act : 0));
    }

    static LadderConfig Ladder(ModelConfig c, MemoryEstimateOptions o)
    {
        var ladder = new LadderConfig { ReductionFactor = o.ReductionFactor, SideLayers = o.SideLayers };
        ladder.Validate(c);
        return ladder;
    }

    /// <summary>The decoder projections of one layer of this family: HF name, in and out features.</summary>
    static IEnumerable<(string Name, long In, long Out)> LayerProjections(ModelConfig c)
    {
        var l = c.Family.Layout;
        foreach (var p in l.AttentionProjections.Concat(l.FeedForwardProjections))
        {
            var (inF, outF) = ModelFamily.Shape(p.Role, c);
            yield return (p.Name, inF, outF);
        }
    }

    /// <summary>all-linear, or the named projections of this family (an unknown name lists the family's).</summary>
    static IReadOnlyList<string> LoraTargetNames(ModelConfig c, IReadOnlyList<string> targets)
    {
        var names = LayerProjections(c).Select(p => p.Name).ToList();
        if (targets.Any(TargetMatcher.IsAllLinear)) return names;
        foreach (var t in targets)
            if (!names.Contains(t))
                throw LoraShellException.InvalidArgument("UnknownTarget", $"LoRA target '{t}' is not a Linear module of a {c.ModelType} model; use all-linear or some of {string.Join(", ", names.Distinct())}.", t);
        return targets.Distinct().ToList();
    }

    /// <summary>The adapted projections of one layer (GPT-2 has two c_proj: a name selects both, as PEFT's suffix match does).</summary>
    static IEnumerable<(string Name, long In, long Out)> AdaptedProjections(ModelConfig c, IReadOnlyList<string> targets)
    {
        var wanted = LoraTargetNames(c, targets).ToHashSet();
        return LayerProjections(c).Where(p => wanted.Contains(p.Name));
    }

    /// <summary>What the adapters of one layer keep per token, as their variant states it.</summary>
    static double AdaptedActivationsPerLayer(ModelConfig c, MemoryEstimateOptions o)
    {
        var variant = LoraVariant.For(o.UseDora);
        return AdaptedProjections(c, o.LoraTargets).Sum(p => variant.ActivationsPerToken(p.In, p.Out, o.LoraRank));
    }

    /// <summary>The largest adapted projection's temporaries inside its forward (DoRA's weight norm), alive one at a time.</summary>
    static double AdapterTransientBytes(ModelConfig c, MemoryEstimateOptions o)
    {
        if (o.Method != TrainingMethod.Lora) return 0;
        var variant = LoraVariant.For(o.UseDora);
        return AdaptedProjections(c, o.LoraTargets).Select(p => variant.TransientBytes(p.In, p.Out)).DefaultIfEmpty(0).Max();
    }

    /// <summary>Trainable parameters of the adapters in every layer, as their variant counts them (plain LoRA: r·(in + out) per projection).</summary>
    public static long LoraParameters(ModelConfig c, int rank, IReadOnlyList<string> targets, LoraVariant? variant = null)
    {
        variant ??= LoraVariant.Plain;
        return AdaptedProjections(c, targets).Sum(p => variant.TrainableParameters(p.In, p.Out, rank)) * c.NumHiddenLayers;
    }

    /// <summary>
    /// Parameters of the modules_to_save copies: trainable weights like any other (working copy, gradient, AdamW
    /// moments), beside the base module, which stays in the frozen weights. Matched as the adapter matches them.
    /// </summary>
    public static long SavedModuleParameters(ModelConfig c, IReadOnlyList<string>? modulesToSave)
    {
        if (modulesToSave is not { Count: > 0 }) return 0;
        long count = c.Family.Tensors(c).Where(t => t.Name.Contains('.') && LoraConfig.SavesModule(modulesToSave, t.Name[..t.Name.LastIndexOf('.')]))
            .Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        // A tied model has no lm_head tensor: a copy of it is a copy of the embedding's weight.
        if (c.TieWordEmbeddings && LoraConfig.SavesModule(modulesToSave, FamilyLayout.Head)) count += (long)c.VocabSize * c.HiddenSize;
        if (count == 0)
            throw LoraShellException.InvalidArgument("ModulesToSaveNotFound",
                $"modules_to_save names {string.Join(", ", modulesToSave)}, which matches no module of a {c.ModelType} model.", modulesToSave);
        return count;
    }

    /// <summary>
    /// On a tied model, a modules_to_save copy of the head or of the embedding unties them (PEFT deep-copies one
    /// side, the other keeps the base weight): one more frozen [vocab, hidden] weight beside the trained copy.
    /// </summary>
    static long UntiedHeadParameters(ModelConfig c, MemoryEstimateOptions o)
        => o.Method == TrainingMethod.Lora && c.TieWordEmbeddings && o.ModulesToSave is { Count: > 0 } m
           && (LoraConfig.SavesModule(m, FamilyLayout.Head) || LoraConfig.SavesModule(m, $"{c.Family.Layout.Backbone}.{c.Family.Layout.Embedding}"))
            ? (long)c.VocabSize * c.HiddenSize : 0;

    /// <summary>Weights of the decoder's projections (what 8-/4-bit formats quantise).</summary>
    static long LinearWeights(ModelConfig c) => c.NumHiddenLayers * LayerProjections(c).Sum(p => p.In * p.Out);

    internal static void Validate(MemoryEstimateOptions o)
    {
        if (o.BatchSize < 1) throw LoraShellException.InvalidArgument("InvalidBatchSize", $"Batch size must be at least 1 (got {o.BatchSize}).", o.BatchSize);
        if (o.LossChunkTokens is < 1) throw LoraShellException.InvalidArgument("InvalidLossChunk", $"Loss chunk must be at least 1 token (got {o.LossChunkTokens}).", o.LossChunkTokens);
        if (o.SequenceLength < 1) throw LoraShellException.InvalidArgument("InvalidSequenceLength", $"Sequence length must be at least 1 (got {o.SequenceLength}).", o.SequenceLength);
        if (o.TrainableTokens < 0) throw LoraShellException.InvalidArgument("InvalidTokenIndices", $"The number of trained token rows cannot be negative (got {o.TrainableTokens}).", o.TrainableTokens);
        if (o.LoraRank < 1) throw LoraShellException.InvalidArgument("InvalidRank", $"LoRA rank must be at least 1 (got {o.LoraRank}).", o.LoraRank);
        if (!(o.GpuMemoryGB > 0)) throw LoraShellException.InvalidArgument("InvalidGpuMemory", $"GPU memory must be positive (got {o.GpuMemoryGB} GB).", o.GpuMemoryGB);
        if (o.Precision is TrainingPrecision.Int8Base or TrainingPrecision.Int4Base && o.Quantization != Models.Quantization.BaseQuantization.None
            && o.Quantization != QuantizationOf(o))
            throw LoraShellException.InvalidArgument("ConflictingQuantization",
                $"Precision {o.Precision} already means a{(o.Precision == TrainingPrecision.Int8Base ? "n int8" : " 4-bit NF4")} base, and the quantization asked for is {o.Quantization}; give one of them (Fp32 or Bf16Mixed with the quantization, or {o.Precision} alone).", o.Quantization);
        if (o.Method == TrainingMethod.Full && o.Precision is TrainingPrecision.Int8Base or TrainingPrecision.Int4Base)
            throw LoraShellException.InvalidArgument("QuantizedFullFineTune",
                $"{o.Precision} quantises frozen base weights, so it applies to Lora and Ladder only; full fine-tuning trains every weight (use Fp32 or Bf16Mixed).", o.Precision);
    }
}
