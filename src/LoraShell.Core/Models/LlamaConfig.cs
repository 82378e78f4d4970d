using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Models;

/// <summary>
/// Architecture numbers of a Llama-family decoder, named as in Hugging Face's <c>config.json</c>.
/// </summary>
public sealed record LlamaConfig
{
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }
    public int? HeadDimOverride { get; init; }
    public int BosTokenId { get; init; } = 1;
    public int EosTokenId { get; init; } = 2;
    /// <summary>dtype the weights were stored in (HF <c>torch_dtype</c>), for information.</summary>
    public string TorchDType { get; init; } = "float32";

    public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    public int KeyValueDim => NumKeyValueHeads * HeadDim;

    /// <summary>Number of parameters (tied embeddings counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long d = HiddenSize, h = IntermediateSize, q = (long)NumAttentionHeads * HeadDim, kv = KeyValueDim;
            long attention = d * q + 2 * d * kv + q * d + (AttentionBias ? q + 2 * kv + d : 0);
            long mlp = 3 * d * h + (MlpBias ? 2 * h + d : 0);
            long layer = attention + mlp + 2 * d;
            long embed = (long)VocabSize * d;
            return embed + NumHiddenLayers * layer + d + (TieWordEmbeddings ? 0 : embed);
        }
    }

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
        Require(HeadDimOverride != null || HiddenSize % NumAttentionHeads == 0,
            $"hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads})");
        Require(HeadDim % 2 == 0, $"head dimension ({HeadDim}) must be even for rotary embeddings");
        Require(VocabSize > 0, $"vocab_size must be positive (got {VocabSize})");
        Require(MaxPositionEmbeddings > 0, $"max_position_embeddings must be positive (got {MaxPositionEmbeddings})");
        Require(RmsNormEps > 0, $"rms_norm_eps must be positive (got {RmsNormEps})");
        Require(RopeTheta > 0, $"rope_theta must be positive (got {RopeTheta})");
    }

    static readonly string[] RequiredKeys =
        { "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size" };

    /// <summary>Reads an HF <c>config.json</c>; missing required keys are all named in one error.</summary>
    public static LlamaConfig FromJson(string json, string source)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}' is not valid JSON ({e.Message}).", source); }
        if (root is not JsonObject obj) throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}' is not a JSON object.", source);

        var missing = RequiredKeys.Where(k => obj[k] is null).ToList();
        if (missing.Count > 0)
            throw LoraShellException.InvalidData("ModelConfigMissingKeys",
                $"'{source}' is missing required key(s): {string.Join(", ", missing)}. A Llama-family config.json needs {string.Join(", ", RequiredKeys)}.", source);

        string? modelType = (string?)obj["model_type"];
        if (modelType != null && modelType is not ("llama" or "mistral" or "qwen2"))
            throw LoraShellException.InvalidData("UnsupportedModelType",
                $"'{source}' has model_type '{modelType}'; LoraShell's decoder implements llama (and the Llama-shaped mistral and qwen2 layouts).", source);
        if (obj["rope_scaling"] is JsonObject)
            throw LoraShellException.InvalidData("UnsupportedRopeScaling", $"'{source}' sets rope_scaling, which LoraShell does not implement yet.", source);

        int Int(string key, int fallback) => obj[key] is JsonNode n ? ReadInt(n, key, source) : fallback;
        double Dbl(string key, double fallback) => obj[key] is JsonNode n ? n.GetValue<double>() : fallback;
        bool Bool(string key, bool fallback) => obj[key] is JsonNode n ? n.GetValue<bool>() : fallback;

        int heads = Int("num_attention_heads", 0);
        var config = new LlamaConfig
        {
            HiddenSize = Int("hidden_size", 0),
            IntermediateSize = Int("intermediate_size", 0),
            NumHiddenLayers = Int("num_hidden_layers", 0),
            NumAttentionHeads = heads,
            NumKeyValueHeads = Int("num_key_value_heads", heads),
            VocabSize = Int("vocab_size", 0),
            MaxPositionEmbeddings = Int("max_position_embeddings", 2048),
            RmsNormEps = Dbl("rms_norm_eps", 1e-6),
            RopeTheta = Dbl("rope_theta", 10000.0),
            TieWordEmbeddings = Bool("tie_word_embeddings", false),
            AttentionBias = Bool("attention_bias", modelType == "qwen2"),
            MlpBias = Bool("mlp_bias", false),
            HeadDimOverride = obj["head_dim"] is JsonNode hd ? ReadInt(hd, "head_dim", source) : null,
            BosTokenId = obj["bos_token_id"] is JsonValue b ? ReadInt(b, "bos_token_id", source) : 1,
            EosTokenId = obj["eos_token_id"] is JsonValue eos ? ReadInt(eos, "eos_token_id", source) : 2,
            TorchDType = (string?)obj["torch_dtype"] ?? "float32",
        };
        config.Validate(source);
        return config;
    }

    static int ReadInt(JsonNode node, string key, string source)
    {
        try { return node.GetValue<int>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException)
        {
            throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}': key '{key}' should be an integer, got {node.ToJsonString()}.", source);
        }
    }

    /// <summary>Writes the HF <c>config.json</c> for LlamaForCausalLM.</summary>
    public string ToJson(string torchDType)
    {
        var obj = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["attention_bias"] = AttentionBias,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenId,
            ["hidden_act"] = "silu",
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["mlp_bias"] = MlpBias,
            ["model_type"] = "llama",
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_scaling"] = null,
            ["rope_theta"] = RopeTheta,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["torch_dtype"] = torchDType,
            ["vocab_size"] = VocabSize,
        };
        if (HeadDimOverride is int hd) obj["head_dim"] = hd;
        return obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
