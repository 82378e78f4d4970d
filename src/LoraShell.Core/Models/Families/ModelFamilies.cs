using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.Families;

/// <summary>The families LoraShell implements, by HF model_type.</summary>
public static class ModelFamilies
{
    static readonly IReadOnlyDictionary<string, ModelFamily> ByType = new ModelFamily[]
    {
        new LlamaFamily(), new MistralFamily(), new Qwen2Family(), new Qwen3Family(), new Phi3Family(), new Gpt2Family(),
    }.ToDictionary(f => f.ModelType, StringComparer.Ordinal);

    public static IEnumerable<string> Supported => ByType.Keys;

    public static ModelFamily Get(string modelType)
        => ByType.TryGetValue(modelType, out var f) ? f
            : throw LoraShellException.InvalidData("UnsupportedModelType",
                $"model_type '{modelType}' is not one LoraShell implements; supported: {string.Join(", ", Supported)}.", modelType);

    /// <summary>Reads a config.json: model_type picks the family (llama when absent, as llama2.c exports are).</summary>
    public static ModelConfig ReadConfig(string json, string source)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}' is not valid JSON ({e.Message}).", source); }
        if (root is not JsonObject obj) throw LoraShellException.InvalidData("InvalidModelConfig", $"'{source}' is not a JSON object.", source);
        // Without model_type, transformers goes by architectures (MistralForCausalLM is a Mistral, with its
        // sliding window); llama2.c exports carry neither and are Llama.
        string? byClass = (obj["architectures"] as JsonArray)?.FirstOrDefault() is JsonValue a && a.TryGetValue<string>(out var cls)
            ? ByType.Values.FirstOrDefault(f => f.Architecture == cls)?.ModelType : null;
        string type = new ConfigReader(obj, source).String("model_type", byClass ?? LlamaFamily.Type);
        if (!ByType.TryGetValue(type, out var family))
            throw LoraShellException.InvalidData("UnsupportedModelType",
                $"'{source}' has model_type '{type}'; LoraShell implements {string.Join(", ", Supported)}.", source);
        return family.ReadAndValidate(obj, source);
    }
}
