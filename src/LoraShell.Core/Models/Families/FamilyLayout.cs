namespace LoraShell.Core.Models.Families;

public enum NormKind
{
    /// <summary>RMSNorm with a weight (Llama and its descendants).</summary>
    Rms,
    /// <summary>LayerNorm with weight and bias (GPT-2).</summary>
    Layer,
}

public enum PositionKind
{
    /// <summary>Rotary embeddings on q and k.</summary>
    Rotary,
    /// <summary>A learned position embedding added to the token embedding (GPT-2's wpe).</summary>
    Learned,
}

public enum ProjectionStorage
{
    /// <summary>nn.Linear, weight [out, in].</summary>
    Linear,
    /// <summary>transformers' Conv1D, weight [in, out] (GPT-2).</summary>
    Conv1D,
}

/// <summary>What a projection computes, whatever a family calls it.</summary>
public enum ProjectionRole
{
    Query, Key, Value,
    /// <summary>q, k and v in one matrix (rows q, then k, then v): Phi-3's qkv_proj, GPT-2's c_attn.</summary>
    QueryKeyValue,
    Output,
    Gate, Up,
    /// <summary>gate and up in one matrix (gate rows first): Phi-3's gate_up_proj.</summary>
    GateUp,
    Down,
}

/// <summary>One projection of a decoder layer: its HF name inside its block, and its role.</summary>
public sealed record ProjectionName(string Name, ProjectionRole Role);

/// <summary>
/// Where a family keeps its tensors (Hugging Face's module names) and which shared building blocks
/// it is made of. Everything name- and shape-related comes from here: building the modules, the tensor
/// list a checkpoint is checked against, LoRA's module paths, export.
/// </summary>
public sealed record FamilyLayout
{
    /// <summary>The backbone's attribute in the CausalLM: "model" or "transformer".</summary>
    public required string Backbone { get; init; }
    public required string Embedding { get; init; }
    /// <summary>The learned position embedding (GPT-2's "wpe"), when positions are learned.</summary>
    public string? PositionEmbedding { get; init; }
    public required string Layers { get; init; }
    public required string FinalNorm { get; init; }
    public required string InputNorm { get; init; }
    public required string PostAttentionNorm { get; init; }
    public required string Attention { get; init; }
    public required string FeedForward { get; init; }
    public required IReadOnlyList<ProjectionName> AttentionProjections { get; init; }
    public required IReadOnlyList<ProjectionName> FeedForwardProjections { get; init; }
    /// <summary>Per-head RMSNorms on q and k before RoPE (Qwen3's q_norm, k_norm).</summary>
    public bool QueryKeyNorm { get; init; }
    public NormKind Norm { get; init; } = NormKind.Rms;
    public PositionKind Positions { get; init; } = PositionKind.Rotary;
    public ProjectionStorage Storage { get; init; } = ProjectionStorage.Linear;
    public const string QueryNorm = "q_norm";
    public const string KeyNorm = "k_norm";
    public const string Head = "lm_head";

    public bool GatedFeedForward => FeedForwardProjections.Any(p => p.Role is ProjectionRole.Gate or ProjectionRole.GateUp);
    public string LayerPrefix(int layer) => $"{Backbone}.{Layers}.{layer}.";
}
