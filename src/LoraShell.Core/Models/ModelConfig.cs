using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.Models.Families;

namespace LoraShell.Core.Models;

/// <summary>
/// The architecture numbers of a decoder-only model, named as in Hugging Face's <c>config.json</c>,
/// for every family LoraShell implements. What differs between families (names, fused projections,
/// norms, positions) is described by <see cref="Family"/>; what a family reads from config.json and
/// defaults to is its own.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>HF's <c>model_type</c>: llama, mistral, qwen2, qwen3, phi3 or gpt2.</summary>
    public string ModelType { get; init; } = LlamaFamily.Type;
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>rms_norm_eps, or GPT-2's layer_norm_epsilon.</summary>
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Share of each head's dimensions that rotate (Phi-3's partial_rotary_factor).</summary>
    public double PartialRotaryFactor { get; init; } = 1.0;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Biases on q, k, v and o (Llama's attention_bias; GPT-2 always).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Biases on q, k and v only (Qwen2).</summary>
    public bool QkvBias { get; init; }
    public bool MlpBias { get; init; }
    public int? HeadDimOverride { get; init; }
    /// <summary>Each token attends to the last this many positions, itself included (Mistral, Phi-3); null: all.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>The MLP's activation: silu (gated families) or gelu_new (GPT-2).</summary>
    public string HiddenAct { get; init; } = "silu";
    /// <summary>GPT-2's scale_attn_weights: scores divided by √head_dim (every other family always does).</summary>
    public bool ScaleAttentionWeights { get; init; } = true;
    /// <summary>GPT-2's scale_attn_by_inverse_layer_idx: attention scores also divided by layer index + 1.</summary>
    public bool ScaleAttentionByInverseLayer { get; init; }
    public int BosTokenId { get; init; } = 1;
    public int EosTokenId { get; init; } = 2;
    /// <summary>dtype the weights were stored in (HF <c>torch_dtype</c>), for information.</summary>
    public string TorchDType { get; init; } = "float32";
    /// <summary>The config.json this was read from; exports write it back (with torch_dtype updated) so no key is lost.</summary>
    public JsonObject? Source { get; init; }

    public ModelFamily Family => ModelFamilies.Get(ModelType);
    public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    public int KeyValueDim => NumKeyValueHeads * HeadDim;
    public int QueryDim => NumAttentionHeads * HeadDim;
    /// <summary>Dimensions of each head that RoPE rotates (0 for learned positions).</summary>
    public int RotaryDim => Family.Layout.Positions == PositionKind.Learned ? 0 : (int)(HeadDim * PartialRotaryFactor);
    public bool HasBias(ProjectionRole role) => role switch
    {
        ProjectionRole.Query or ProjectionRole.Key or ProjectionRole.Value or ProjectionRole.QueryKeyValue => AttentionBias || QkvBias,
        ProjectionRole.Output => AttentionBias,
        _ => MlpBias,
    };

    /// <summary>Number of parameters (tied embeddings counted once).</summary>
    public long ParameterCount => Family.Tensors(this).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>Checks the numbers are usable; throws a LoraShellException naming the problem.</summary>
    public void Validate(string source)
    {
        void Require(bool ok, string what)
        {
            if (!ok) throw LoraShellException.InvalidData("InvalidModelConfig", $"Model config from '{source}' is not usable: {what}.", source);
        }
        Require(HiddenSize > 0, $"hidden_size must be positive (got {HiddenSize})");
        Require(IntermediateSize > 0, $"intermediate_size must be positive (got {IntermediateSize})");
        Require(NumHiddenLayers > 0, $"num_hidden_layers must be positive (got {NumHiddenLayers})");
        Require(NumAttentionHeads > 0, $"num_attention_heads must be positive (got {NumAttentionHeads})");
        Require(NumKeyValueHeads > 0 && NumAttentionHeads % NumKeyValueHeads == 0,
            $"num_key_value_heads ({NumKeyValueHeads}) must divide num_attention_heads ({NumAttentionHeads})");
        Require(HeadDimOverride is > 0 || (HeadDimOverride is null && HiddenSize % NumAttentionHeads == 0),
            HeadDimOverride is null ? $"hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads})" : $"head_dim must be positive (got {HeadDimOverride})");
        Require(RotaryDim % 2 == 0, $"the rotary dimension ({RotaryDim} of head dimension {HeadDim}) must be even");
        Require(PartialRotaryFactor > 0 && PartialRotaryFactor <= 1, $"partial_rotary_factor must be in (0, 1] (got {PartialRotaryFactor})");
        Require(VocabSize > 0, $"vocab_size must be positive (got {VocabSize})");
        Require(MaxPositionEmbeddings > 0, $"max_position_embeddings must be positive (got {MaxPositionEmbeddings})");
        Require(RmsNormEps > 0, $"the norm epsilon must be positive (got {RmsNormEps})");
        Require(RopeTheta > 0, $"rope_theta must be positive (got {RopeTheta})");
        Require(SlidingWindow is null or > 0, $"sliding_window must be positive (got {SlidingWindow})");
        // Sizes multiply into tensor shapes; refuse numbers whose products leave what a process can hold
        // (2^40 elements per tensor) before they overflow or reach an allocator.
        const long MaxElements = 1L << 40;
        Require((double)VocabSize * HiddenSize <= MaxElements && (double)IntermediateSize * HiddenSize * 2 <= MaxElements
                && (double)QueryDim * HiddenSize <= MaxElements && (double)MaxPositionEmbeddings * HiddenSize <= MaxElements,
            $"the sizes (vocab_size {VocabSize}, hidden_size {HiddenSize}, intermediate_size {IntermediateSize}, heads × head_dim {(long)NumAttentionHeads * HeadDim}) make tensors of more than 2^40 elements");
        Require(BosTokenId >= 0 && BosTokenId < VocabSize && EosTokenId >= 0 && EosTokenId < VocabSize,
            $"bos_token_id ({BosTokenId}) and eos_token_id ({EosTokenId}) must be ids of the vocabulary (0..{VocabSize - 1})");
        if (RopeScaling is { } s)
            Require(s.Factor > 0 && s.LowFreqFactor > 0 && s.HighFreqFactor > s.LowFreqFactor && s.OriginalMaxPositionEmbeddings > 0,
                $"rope_scaling numbers are not usable (factor {s.Factor}, low_freq_factor {s.LowFreqFactor}, high_freq_factor {s.HighFreqFactor}, original_max_position_embeddings {s.OriginalMaxPositionEmbeddings})");
    }

    /// <summary>Reads an HF <c>config.json</c> of any supported family; the error for an unknown model_type names the supported ones.</summary>
    public static ModelConfig FromJson(string json, string source) => ModelFamilies.ReadConfig(json, source);

    /// <summary>The config.json of a saved model: the one read, if any, with torch_dtype updated; else the family's own.</summary>
    public string ToJson(string torchDType)
    {
        var obj = Source?.DeepClone() as JsonObject ?? Family.WriteConfig(this);
        obj["torch_dtype"] = torchDType;
        // The source file's value may be stale: an adapter's modules_to_save copy unties a tied head. Written only
        // where it says something, so a config that left it to the family's default reads as it did.
        if (obj.ContainsKey("tie_word_embeddings") || TieWordEmbeddings != Family.TiesEmbeddingsByDefault) obj["tie_word_embeddings"] = TieWordEmbeddings;
        // Tools pick the model class from architectures[0] (llama.cpp's converter, vLLM): a config read
        // without it, or naming a class of another family, is written with the family's own.
        if (obj["architectures"] is not JsonArray { Count: > 0 } a || (string?)a[0] != Family.Architecture)
            obj["architectures"] = new JsonArray(Family.Architecture);
        return obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
