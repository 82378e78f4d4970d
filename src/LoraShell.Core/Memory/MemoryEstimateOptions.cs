using LoraShell.Core.Training;

namespace LoraShell.Core.Memory;

/// <summary>What is being trained, how, and on what GPUs; the inputs of <see cref="MemoryEstimator"/>.</summary>
public sealed record MemoryEstimateOptions
{
    public TrainingMethod Method { get; init; } = TrainingMethod.Lora;
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Fp32;

    /// <summary>
    /// How the frozen decoder projections are stored (Lora and Ladder); the rest stays in the precision's
    /// dtype. <see cref="TrainingPrecision.Int8Base"/> and <see cref="TrainingPrecision.Int4Base"/> imply Int8 and Nf4.
    /// </summary>
    public Models.Quantization.BaseQuantization Quantization { get; init; }

    /// <summary>NF4's absmax values quantized to 8 bits too (blocks of 256 with a float32 absmax each).</summary>
    public bool DoubleQuant { get; init; }
    public int BatchSize { get; init; } = 1;
    public int SequenceLength { get; init; } = 2048;

    /// <summary>Encoder-decoder models: the target's length in tokens (the decoder's sequence; -SequenceLength is the input's). Null: the same as the input.</summary>
    public int? TargetLength { get; init; }

    /// <summary>Keep only each layer's input and recompute the layer in backward (one layer's activations live at a time).</summary>
    public bool ActivationCheckpointing { get; init; }

    /// <summary>
    /// Cross-entropy computed in vocabulary chunks (fused linear + loss kernels): logits and their gradient
    /// in the compute dtype only. Off: float32 log-softmax and gradient on top of the logits, as plain
    /// frameworks (and LoraShell's trainer) do.
    /// </summary>
    public bool FusedCrossEntropy { get; init; }

    /// <summary>
    /// Tokens whose logits exist at once when the loss is computed in chunks the way LoraShell's trainer
    /// does (<c>ChunkedCrossEntropy.RowsPerChunk(vocab)</c> rows, each chunk's logits turned into their
    /// gradient in place); null: the whole micro-batch's logits at once.
    /// </summary>
    public int? LossChunkTokens { get; init; }

    /// <summary>Attention keeps its [heads, seq, seq] probabilities for backward (eager attention) instead of a fused kernel's row statistics.</summary>
    public bool EagerAttention { get; init; }

    public int LoraRank { get; init; } = 8;
    /// <summary>DoRA adapters (a magnitude per output row, and the weight norm each step).</summary>
    public bool UseDora { get; init; }
    /// <summary>Modules each adapter keeps a trained copy of (PEFT's modules_to_save: lm_head, embed_tokens, norm, …).</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }
    /// <summary>Embedding rows the adapter trains (trainable_token_indices): a row of hidden-size weights each.</summary>
    public int TrainableTokens { get; init; }

    /// <summary>LoRA targets: "all-linear" or short module names (q_proj, v_proj, …).</summary>
    public IReadOnlyList<string> LoraTargets { get; init; } = new[] { "all-linear" };

    public int ReductionFactor { get; init; } = 8;
    public IReadOnlyList<int>? SideLayers { get; init; }

    public double GpuMemoryGB { get; init; } = 80;

    /// <summary>Memory each GPU loses to the runtime (CUDA context, communication buffers), in GB.</summary>
    public double PerGpuOverheadGB { get; init; }
}
