using LoraShell.Core.Models.Blocks;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>A module holding the token embedding lookup, which a LoRA or trainable-token layer may replace.</summary>
public interface IEmbeddingHost
{
    nn.Module<Tensor, Tensor> EmbeddingLookup { get; }
    void ReplaceEmbeddingLookup(nn.Module<Tensor, Tensor> lookup);
}

/// <summary>
/// A model adapters attach to: its named projections (what LoRA wraps, under Hugging Face's paths), its
/// token embedding, how its head relates to the embedding, and a forward pass to check a merge with.
/// The decoder-only families (<see cref="CausalLM"/>) and T5 both implement it, so adapters, target
/// matching and PEFT files work on either the same way.
/// </summary>
public interface IAdaptableModel
{
    /// <summary>The model as a module (parameters, training mode, state dict).</summary>
    nn.Module Module { get; }

    /// <summary>Every projection a target may name, in layer order (not the output head).</summary>
    IEnumerable<LinearSlot> LinearSlots();

    /// <summary>The token embedding, which LoRA may wrap too (PEFT's lora.Embedding).</summary>
    EmbeddingSlot EmbeddingSlot();

    IEnumerable<QuantizedProjection> QuantizedProjections();

    WeightFormat Format { get; }

    /// <summary>Layers that <c>layers_to_transform</c> indexes (a decoder's layers; T5's blocks per stack).</summary>
    int LayerCount { get; }

    /// <summary>Whether the output head is the token embedding (tie_word_embeddings).</summary>
    bool TieWordEmbeddings { get; }

    /// <summary>PEFT's fan_in_fan_out for this model's projections (GPT-2's Conv1D stores [in, out]).</summary>
    bool FanInFanOut { get; }

    /// <summary>Gives a tied head its own copy of the embedding (for modules_to_save); false when it has one already.</summary>
    bool UntieHead();

    /// <summary>Ties the head back to the embedding; false when it was not untied.</summary>
    bool RetieHead();

    /// <summary>Logits of a short probe sequence: what a merge must leave unchanged (the vocabulary and context it may use).</summary>
    Tensor ProbeLogits(long[] ids);

    /// <summary>The modules LoRA targets when none are named (PEFT's per-architecture defaults: q_proj, v_proj; T5's q, v).</summary>
    IReadOnlyList<string> DefaultLoraTargets { get; }

    /// <summary>PEFT's task_type for this architecture's adapters: CAUSAL_LM, or SEQ_2_SEQ_LM for T5.</summary>
    string PeftTaskType { get; }

    /// <summary>The model's shape as JSON, telling a checkpoint of this model from another's.</summary>
    string ConfigFingerprint { get; }

    /// <summary>The vocabulary, the longest probe and a token to start it with, for <see cref="ProbeLogits"/>.</summary>
    (int VocabSize, int MaxProbeLength, int StartToken) ProbeShape { get; }
}
