using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.Families;

/// <summary>
/// What the Llama descendants share: config.json keys (hidden_size, num_key_value_heads, rms_norm_eps,
/// rope_theta, …), RMSNorm, rotary positions and HF's <c>model.layers.N.self_attn / mlp</c> names.
/// Each family states its own defaults and what it adds.
/// </summary>
public abstract class RotaryFamily : ModelFamily
{
    protected static readonly IReadOnlyList<ProjectionName> SeparateAttention = new ProjectionName[]
    {
        new("q_proj", ProjectionRole.Query), new("k_proj", ProjectionRole.Key), new("v_proj", ProjectionRole.Value), new("o_proj", ProjectionRole.Output),
    };

    protected static readonly IReadOnlyList<ProjectionName> GatedMlp = new ProjectionName[]
    {
        new("gate_proj", ProjectionRole.Gate), new("up_proj", ProjectionRole.Up), new("down_proj", ProjectionRole.Down),
    };

    protected static FamilyLayout LlamaLayout(IReadOnlyList<ProjectionName>? attention = null, IReadOnlyList<ProjectionName>? mlp = null, bool qkNorm = false) => new()
    {
        Backbone = "model", Embedding = "embed_tokens", Layers = "layers", FinalNorm = "norm",
        InputNorm = "input_layernorm", PostAttentionNorm = "post_attention_layernorm", Attention = "self_attn", FeedForward = "mlp",
        AttentionProjections = attention ?? SeparateAttention, FeedForwardProjections = mlp ?? GatedMlp, QueryKeyNorm = qkNorm,
    };

    static readonly string[] RequiredKeys = { "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size" };

    /// <summary>rope_scaling types this family's rotary embedding takes.</summary>
    protected virtual IReadOnlyCollection<string> RopeScalingTypes => RopeScaling.Supported;

    protected virtual int DefaultMaxPositions => 2048;
    protected virtual double DefaultNormEps => 1e-6;

    public override ModelConfig ReadConfig(ConfigReader r)
    {
        r.RequireKeys(RequiredKeys);
        int heads = r.Int("num_attention_heads", 0);
        return new ModelConfig
        {
            ModelType = ModelType,
            HiddenSize = r.Int("hidden_size", 0),
            IntermediateSize = r.Int("intermediate_size", 0),
            NumHiddenLayers = r.Int("num_hidden_layers", 0),
            NumAttentionHeads = heads,
            NumKeyValueHeads = r.Has("num_key_value_heads") ? r.Int("num_key_value_heads", heads) : heads,
            VocabSize = r.Int("vocab_size", 0),
            MaxPositionEmbeddings = r.Int("max_position_embeddings", DefaultMaxPositions),
            RmsNormEps = r.Double("rms_norm_eps", DefaultNormEps),
            RopeTheta = r.Double("rope_theta", r.Json["rope_parameters"] is JsonObject p && p["rope_theta"] is not null ? new ConfigReader(p, r.Source).Double("rope_theta", 10000) : 10000),
            RopeScaling = r.RopeScaling(RopeScalingTypes),
            TieWordEmbeddings = r.Bool("tie_word_embeddings", TiesEmbeddingsByDefault),
            HeadDimOverride = r.NullableInt("head_dim"),
            HiddenAct = Activations.Check(r.String("hidden_act", "silu"), r.Source),
            BosTokenId = r.FirstId("bos_token_id", 1),
            EosTokenId = r.FirstId("eos_token_id", 2),
            TorchDType = r.String("torch_dtype", r.String("dtype", "float32")),
            Source = r.Json,
        };
    }

    public override string? CanonicalName(string name, ModelConfig c)
        => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal) ? null : base.CanonicalName(name, c);

    public override JsonObject WriteConfig(ModelConfig c)
    {
        var obj = CommonConfig(c);
        obj["hidden_act"] = c.HiddenAct;
        obj["hidden_size"] = c.HiddenSize;
        obj["intermediate_size"] = c.IntermediateSize;
        obj["max_position_embeddings"] = c.MaxPositionEmbeddings;
        obj["num_attention_heads"] = c.NumAttentionHeads;
        obj["num_hidden_layers"] = c.NumHiddenLayers;
        obj["num_key_value_heads"] = c.NumKeyValueHeads;
        obj["rms_norm_eps"] = c.RmsNormEps;
        obj["rope_scaling"] = null;
        obj["rope_theta"] = c.RopeTheta;
        if (c.HeadDimOverride is int hd) obj["head_dim"] = hd;
        return obj;
    }
}
