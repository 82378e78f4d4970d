using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// A T5 encoder-decoder's shape, from config.json as transformers' T5Config reads it: t5 (relu
/// feed-forward, tied head rescaled by d_model^-0.5) and t5 v1.1 / flan-t5 / mt5 / mt0 (gated-gelu,
/// untied lm_head).
/// </summary>
public sealed record T5Config
{
    public string ModelType { get; init; } = "t5";
    public int VocabSize { get; init; } = 32128;
    public int DModel { get; init; } = 512;
    /// <summary>Width of one attention head (d_kv); heads × d_kv need not equal d_model.</summary>
    public int DKv { get; init; } = 64;
    public int DFf { get; init; } = 2048;
    public int NumLayers { get; init; } = 6;
    public int NumDecoderLayers { get; init; } = 6;
    public int NumHeads { get; init; } = 8;
    public int RelativeAttentionNumBuckets { get; init; } = 32;
    public int RelativeAttentionMaxDistance { get; init; } = 128;
    public double LayerNormEpsilon { get; init; } = 1e-6;
    /// <summary>The feed-forward activation (relu, gelu_new, …).</summary>
    public string DenseActivation { get; init; } = "relu";
    /// <summary>gated-*: wo(act(wi_0·x) ⊙ wi_1·x) instead of wo(act(wi·x)).</summary>
    public bool GatedFeedForward { get; init; }
    public bool TieWordEmbeddings { get; init; } = true;
    public int PadTokenId { get; init; }
    public int EosTokenId { get; init; } = 1;
    /// <summary>The token the decoder starts from (pad, 0, in every released T5).</summary>
    public int DecoderStartTokenId { get; init; }

    public int InnerDim => NumHeads * DKv;

    /// <summary>config.json as transformers writes it for this shape (what <see cref="FromJson"/> reads back).</summary>
    public string ToJson()
    {
        string activation = GatedFeedForward && DenseActivation == "gelu_new" ? "gelu" : DenseActivation;
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("T5ForConditionalGeneration"), ["model_type"] = ModelType, ["is_encoder_decoder"] = true,
            ["vocab_size"] = VocabSize, ["d_model"] = DModel, ["d_kv"] = DKv, ["d_ff"] = DFf,
            ["num_layers"] = NumLayers, ["num_decoder_layers"] = NumDecoderLayers, ["num_heads"] = NumHeads,
            ["relative_attention_num_buckets"] = RelativeAttentionNumBuckets, ["relative_attention_max_distance"] = RelativeAttentionMaxDistance,
            ["layer_norm_epsilon"] = LayerNormEpsilon, ["feed_forward_proj"] = GatedFeedForward ? $"gated-{activation}" : activation,
            ["tie_word_embeddings"] = TieWordEmbeddings, ["pad_token_id"] = PadTokenId, ["eos_token_id"] = EosTokenId,
            ["decoder_start_token_id"] = DecoderStartTokenId, ["torch_dtype"] = "float32",
        };
        return config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    public static bool IsT5(JsonObject config) => (string?)config["model_type"] is "t5" or "mt5";

    public static T5Config FromJson(string json, string source)
    {
        JsonObject c;
        try { c = JsonNode.Parse(json) as JsonObject ?? throw new System.Text.Json.JsonException("not an object"); }
        catch (System.Text.Json.JsonException e) { throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}' is not a valid config.json: {e.Message}", source); }
        string modelType = (string?)c["model_type"] ?? "";
        if (modelType is not ("t5" or "mt5"))
            throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}' is model_type '{modelType}', not t5 or mt5.", source);
        int Int(string key, int fallback)
        {
            if (c[key] is null) return fallback;
            try { return c[key]!.GetValue<int>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException) { throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}': {key} should be an integer, got {c[key]!.ToJsonString()}.", source); }
        }
        string ff = (string?)c["feed_forward_proj"] ?? "relu";
        var parts = ff.Split('-');
        bool gated = parts.Length == 2 && parts[0] == "gated";
        if (parts.Length > 2 || (parts.Length == 2 && !gated))
            throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}': feed_forward_proj '{ff}' is neither an activation nor gated-<activation> (relu, gated-gelu).", source);
        // transformers maps gated-gelu to gelu_new (the tanh approximation), for the released v1.1 checkpoints.
        string act = gated && parts[1] == "gelu" ? "gelu_new" : parts[^1];
        int layers = Int("num_layers", 6);
        int pad = Int("pad_token_id", 0);
        var config = new T5Config
        {
            ModelType = modelType,
            VocabSize = Int("vocab_size", 32128), DModel = Int("d_model", 512), DKv = Int("d_kv", 64), DFf = Int("d_ff", 2048),
            NumLayers = layers, NumDecoderLayers = Int("num_decoder_layers", layers), NumHeads = Int("num_heads", 8),
            RelativeAttentionNumBuckets = Int("relative_attention_num_buckets", 32), RelativeAttentionMaxDistance = Int("relative_attention_max_distance", 128),
            LayerNormEpsilon = c["layer_norm_epsilon"]?.GetValue<double>() ?? 1e-6,
            DenseActivation = Families.Activations.Check(act, source), GatedFeedForward = gated,
            TieWordEmbeddings = c["tie_word_embeddings"]?.GetValue<bool>() ?? true,
            PadTokenId = pad, EosTokenId = Int("eos_token_id", 1), DecoderStartTokenId = Int("decoder_start_token_id", pad),
        };
        foreach (var (name, value) in new[] { ("vocab_size", config.VocabSize), ("d_model", config.DModel), ("d_kv", config.DKv), ("d_ff", config.DFf),
                     ("num_layers", config.NumLayers), ("num_decoder_layers", config.NumDecoderLayers), ("num_heads", config.NumHeads),
                     ("relative_attention_num_buckets", config.RelativeAttentionNumBuckets), ("relative_attention_max_distance", config.RelativeAttentionMaxDistance) })
            if (value < 1) throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}': {name} must be at least 1 (got {value}).", source);
        return config;
    }
}
