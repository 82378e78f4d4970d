using LoraShell.Core.Training;

namespace LoraShell.Core.Memory;

/// <summary>
/// Training memory of one configuration, in bytes by component. Weights, gradients and optimizer states
/// can be sharded over GPUs (ZeRO-3 / FSDP); activations belong to each GPU's own micro-batch.
/// </summary>
public sealed record MemoryEstimate
{
    public string Model { get; init; } = "";
    public TrainingMethod Method { get; init; }
    public TrainingPrecision Precision { get; init; }
    /// <summary>How the frozen decoder projections are stored (None: dense in the precision's dtype).</summary>
    public Models.Quantization.BaseQuantization Quantization { get; init; }
    public bool DoubleQuant { get; init; }
    public long Parameters { get; init; }
    public long TrainableParameters { get; init; }
    public int BatchSize { get; init; }
    public int SequenceLength { get; init; }
    public bool ActivationCheckpointing { get; init; }

    /// <summary>Working copy of every weight (frozen and trainable) in its training dtype.</summary>
    public double WeightBytes { get; init; }
    /// <summary>Gradients of trainable weights, including a float32 accumulation buffer in mixed precision.</summary>
    public double GradientBytes { get; init; }
    /// <summary>AdamW moments and, in mixed precision, float32 master weights.</summary>
    public double OptimizerBytes { get; init; }
    /// <summary>Activations kept for backward for one micro-batch, plus the loss's logits buffers.</summary>
    public double ActivationBytes { get; init; }

    /// <summary>
    /// Gradients that exist when activations peak (the start of backward, or the recomputation of the
    /// first layer with checkpointing): backward produces a layer's gradients only after the layers above
    /// it have run, and the trainer frees them after every step.
    /// </summary>
    public double GradientBytesAtPeak { get; init; }

    /// <summary>
    /// The peak on one device: weights and optimizer states, plus the larger of all gradients (just before
    /// the optimizer step) and the activations with the gradients that exist beside them.
    /// </summary>
    public double TotalBytes => WeightBytes + OptimizerBytes + Math.Max(GradientBytes, GradientBytesAtPeak + ActivationBytes);
    public double StateBytes => WeightBytes + GradientBytes + OptimizerBytes;

    public double GpuMemoryGB { get; init; }
    /// <summary>Fewest GPUs of <see cref="GpuMemoryGB"/> that hold the sharded states plus one micro-batch's activations each; null when activations alone do not fit one GPU.</summary>
    public int? Gpus { get; init; }
    /// <summary>Memory needed on each of <see cref="Gpus"/> GPUs, in GB.</summary>
    public double? PerGpuGB { get; init; }
    public string Notes { get; init; } = "";

    public const double GB = 1e9;
}
