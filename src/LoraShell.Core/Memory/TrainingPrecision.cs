namespace LoraShell.Core.Memory;

/// <summary>How weights, gradients and optimizer states are stored during training.</summary>
public enum TrainingPrecision
{
    /// <summary>Everything in float32: 4 B per weight, 4 B per gradient, 8 B of AdamW moments.</summary>
    Fp32,
    /// <summary>
    /// bf16 compute with float32 master weights, the usual large-model recipe (DeepSpeed's bf16 optimizer):
    /// bf16 weights and gradients, a float32 gradient-accumulation buffer, float32 master weights and
    /// AdamW moments: 2 + 2 + 4 + 4 + 8 = 20 B per trainable parameter, 2 B per frozen one.
    /// </summary>
    Bf16Mixed,
    /// <summary>Frozen decoder Linear weights in 8 bits (LLM.int8-style); everything trainable as <see cref="Bf16Mixed"/>.</summary>
    Int8Base,
    /// <summary>Frozen decoder Linear weights in 4 bits (QLoRA NF4, one float32 absmax per 64 weights); trainable as <see cref="Bf16Mixed"/>.</summary>
    Int4Base,
}
