using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.Families;

/// <summary>
/// transformers' <c>gpt2</c>: learned positions (<c>wpe</c>), LayerNorm with bias, <c>gelu_new</c>,
/// a tied head and Conv1D weights stored [in, out] (<c>attn.c_attn</c> = q, k, v; <c>attn.c_proj</c>,
/// <c>mlp.c_fc</c>, <c>mlp.c_proj</c>), all with biases. Checkpoints come with the GPT2LMHeadModel
/// <c>transformer.</c> prefix or without it (GPT2Model, the original upload), and may carry the
/// attention's causal-mask buffers, which are ignored.
/// </summary>
public sealed class Gpt2Family : ModelFamily
{
    public const string Prefix = "transformer.";
    public override string ModelType => "gpt2";
    public override bool TiesEmbeddingsByDefault => true; // GPT2Config's tie_word_embeddings
    public override string Architecture => "GPT2LMHeadModel";
    public override FamilyLayout Layout { get; } = new()
    {
        Backbone = "transformer", Embedding = "wte", PositionEmbedding = "wpe", Layers = "h", FinalNorm = "ln_f",
        InputNorm = "ln_1", PostAttentionNorm = "ln_2", Attention = "attn", FeedForward = "mlp",
        AttentionProjections = new ProjectionName[] { new("c_attn", ProjectionRole.QueryKeyValue), new("c_proj", ProjectionRole.Output) },
        FeedForwardProjections = new ProjectionName[] { new("c_fc", ProjectionRole.Up), new("c_proj", ProjectionRole.Down) },
        Norm = NormKind.Layer, Positions = PositionKind.Learned, Storage = ProjectionStorage.Conv1D,
    };

    public override IEnumerable<(string Problem, bool Fatal)> GgufLimitations(ModelConfig c)
    {
        if (c.ScaleAttentionByInverseLayer) yield return ("scale_attn_by_inverse_layer_idx true, which llama.cpp's gpt2 architecture does not implement", true);
        if (!c.ScaleAttentionWeights) yield return ("scale_attn_weights false, which llama.cpp's gpt2 architecture does not implement", true);
    }

    public override ModelConfig ReadConfig(ConfigReader r)
    {
        r.RequireKeys("n_embd", "n_layer", "n_head", "vocab_size");
        int hidden = r.Int("n_embd", 0), heads = r.Int("n_head", 0);
        return new ModelConfig
        {
            ModelType = ModelType,
            HiddenSize = hidden,
            IntermediateSize = r.NullableInt("n_inner") ?? 4 * hidden,
            NumHiddenLayers = r.Int("n_layer", 0),
            NumAttentionHeads = heads,
            NumKeyValueHeads = heads,
            VocabSize = r.Int("vocab_size", 0),
            MaxPositionEmbeddings = r.Int("n_positions", 1024),
            RmsNormEps = r.Double("layer_norm_epsilon", 1e-5),
            TieWordEmbeddings = r.Bool("tie_word_embeddings", TiesEmbeddingsByDefault),
            AttentionBias = true,
            MlpBias = true,
            HiddenAct = Activations.Check(r.String("activation_function", "gelu_new"), r.Source),
            ScaleAttentionWeights = r.Bool("scale_attn_weights", true),
            ScaleAttentionByInverseLayer = r.Bool("scale_attn_by_inverse_layer_idx", false),
            BosTokenId = r.FirstId("bos_token_id", 50256),
            EosTokenId = r.FirstId("eos_token_id", 50256),
            TorchDType = r.String("torch_dtype", r.String("dtype", "float32")),
            Source = r.Json,
        };
    }

    public override string? CanonicalName(string name, ModelConfig c)
    {
        // GPT2Attention's non-persistent causal mask, written into old checkpoints.
        if (name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)) return null;
        if (name.StartsWith($"{FamilyLayout.Head}.", StringComparison.Ordinal)) return base.CanonicalName(name, c);
        return name.StartsWith(Prefix, StringComparison.Ordinal) ? name : Prefix + name;
    }

    public override JsonObject WriteConfig(ModelConfig c)
    {
        var obj = CommonConfig(c);
        obj["activation_function"] = c.HiddenAct;
        obj["layer_norm_epsilon"] = c.RmsNormEps;
        obj["n_embd"] = c.HiddenSize;
        obj["n_head"] = c.NumAttentionHeads;
        obj["n_inner"] = c.IntermediateSize;
        obj["n_layer"] = c.NumHiddenLayers;
        obj["n_positions"] = c.MaxPositionEmbeddings;
        obj["scale_attn_by_inverse_layer_idx"] = c.ScaleAttentionByInverseLayer;
        obj["scale_attn_weights"] = c.ScaleAttentionWeights;
        return obj;
    }
}
