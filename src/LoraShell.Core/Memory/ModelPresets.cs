using LoraShell.Core.Models;

namespace LoraShell.Core.Memory;

/// <summary>Architectures of well-known models, from their published config.json, for memory estimates.</summary>
public static class ModelPresets
{
    public static readonly IReadOnlyDictionary<string, LlamaConfig> All = new Dictionary<string, LlamaConfig>(StringComparer.OrdinalIgnoreCase)
    {
        // Qwen1.5 (model_type qwen2): multi-head attention with q/k/v biases, untied 152k-vocab embeddings.
        ["Qwen1.5-7B"] = new() { HiddenSize = 4096, IntermediateSize = 11008, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 32, VocabSize = 151936, MaxPositionEmbeddings = 32768, AttentionBias = true },
        ["Qwen1.5-72B"] = new() { HiddenSize = 8192, IntermediateSize = 24576, NumHiddenLayers = 80, NumAttentionHeads = 64, NumKeyValueHeads = 64, VocabSize = 152064, MaxPositionEmbeddings = 32768, AttentionBias = true },
        ["Llama-2-7B"] = new() { HiddenSize = 4096, IntermediateSize = 11008, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 32, VocabSize = 32000, MaxPositionEmbeddings = 4096 },
        ["Llama-3-8B"] = new() { HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8, VocabSize = 128256, MaxPositionEmbeddings = 8192 },
        // Karpathy's llama2.c TinyStories 260K (the model in ../shared): tied embeddings, grouped-query attention.
        ["stories260K"] = new() { HiddenSize = 64, IntermediateSize = 172, NumHiddenLayers = 5, NumAttentionHeads = 8, NumKeyValueHeads = 4, VocabSize = 512, MaxPositionEmbeddings = 512, TieWordEmbeddings = true },
    };

    /// <summary>The preset's architecture; an unknown name is an error that lists the known ones.</summary>
    public static LlamaConfig Get(string name)
        => All.TryGetValue(name, out var c) ? c
            : throw LoraShellException.InvalidArgument("UnknownPreset", $"There is no model preset '{name}'. Known presets: {string.Join(", ", Names)}.", name);

    public static IEnumerable<string> Names => All.Keys;
}
