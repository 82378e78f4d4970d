using LoraShell.Core.Models;
using LoraShell.Core.Models.T5;

namespace LoraShell.Core.Memory;

/// <summary>Architectures of well-known models, from their published config.json, for memory estimates.</summary>
public static class ModelPresets
{
    public static readonly IReadOnlyDictionary<string, ModelConfig> All = new Dictionary<string, ModelConfig>(StringComparer.OrdinalIgnoreCase)
    {
        // Qwen1.5 (model_type qwen2): multi-head attention with q/k/v biases, untied 152k-vocab embeddings.
        ["Qwen1.5-7B"] = new() { ModelType = "qwen2", HiddenSize = 4096, IntermediateSize = 11008, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 32, VocabSize = 151936, MaxPositionEmbeddings = 32768, QkvBias = true },
        ["Qwen1.5-72B"] = new() { ModelType = "qwen2", HiddenSize = 8192, IntermediateSize = 24576, NumHiddenLayers = 80, NumAttentionHeads = 64, NumKeyValueHeads = 64, VocabSize = 152064, MaxPositionEmbeddings = 32768, QkvBias = true },
        ["Qwen2.5-0.5B"] = new() { ModelType = "qwen2", HiddenSize = 896, IntermediateSize = 4864, NumHiddenLayers = 24, NumAttentionHeads = 14, NumKeyValueHeads = 2, VocabSize = 151936, MaxPositionEmbeddings = 32768, QkvBias = true, TieWordEmbeddings = true },
        ["Qwen2.5-7B"] = new() { ModelType = "qwen2", HiddenSize = 3584, IntermediateSize = 18944, NumHiddenLayers = 28, NumAttentionHeads = 28, NumKeyValueHeads = 4, VocabSize = 152064, MaxPositionEmbeddings = 32768, QkvBias = true },
        // Qwen3: head_dim 128 whatever the width, q/k norms, no biases.
        ["Qwen3-0.6B"] = new() { ModelType = "qwen3", HiddenSize = 1024, IntermediateSize = 3072, NumHiddenLayers = 28, NumAttentionHeads = 16, NumKeyValueHeads = 8, HeadDimOverride = 128, VocabSize = 151936, MaxPositionEmbeddings = 40960, TieWordEmbeddings = true },
        ["Qwen3-8B"] = new() { ModelType = "qwen3", HiddenSize = 4096, IntermediateSize = 12288, NumHiddenLayers = 36, NumAttentionHeads = 32, NumKeyValueHeads = 8, HeadDimOverride = 128, VocabSize = 151936, MaxPositionEmbeddings = 40960 },
        ["Llama-2-7B"] = new() { HiddenSize = 4096, IntermediateSize = 11008, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 32, VocabSize = 32000, MaxPositionEmbeddings = 4096 },
        ["Llama-3-8B"] = new() { HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8, VocabSize = 128256, MaxPositionEmbeddings = 8192 },
        ["Llama-3.1-8B"] = new() { HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8, VocabSize = 128256, MaxPositionEmbeddings = 131072, RopeTheta = 500000, RopeScaling = Llama3Scaling(8) },
        ["Llama-3.2-1B"] = new() { HiddenSize = 2048, IntermediateSize = 8192, NumHiddenLayers = 16, NumAttentionHeads = 32, NumKeyValueHeads = 8, HeadDimOverride = 64, VocabSize = 128256, MaxPositionEmbeddings = 131072, RopeTheta = 500000, RopeScaling = Llama3Scaling(32), TieWordEmbeddings = true },
        ["Llama-3.2-3B"] = new() { HiddenSize = 3072, IntermediateSize = 8192, NumHiddenLayers = 28, NumAttentionHeads = 24, NumKeyValueHeads = 8, HeadDimOverride = 128, VocabSize = 128256, MaxPositionEmbeddings = 131072, RopeTheta = 500000, RopeScaling = Llama3Scaling(32), TieWordEmbeddings = true },
        ["TinyLlama-1.1B"] = new() { HiddenSize = 2048, IntermediateSize = 5632, NumHiddenLayers = 22, NumAttentionHeads = 32, NumKeyValueHeads = 4, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5 },
        ["Mistral-7B"] = new() { ModelType = "mistral", HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8, VocabSize = 32768, MaxPositionEmbeddings = 32768, RopeTheta = 1000000, RmsNormEps = 1e-5 },
        // Phi-3-mini: fused qkv_proj and gate_up_proj, multi-head attention.
        ["Phi-3-mini"] = new() { ModelType = "phi3", HiddenSize = 3072, IntermediateSize = 8192, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 32, VocabSize = 32064, MaxPositionEmbeddings = 4096, RmsNormEps = 1e-5, SlidingWindow = 2047 },
        ["GPT-2"] = new() { ModelType = "gpt2", BosTokenId = 50256, EosTokenId = 50256, HiddenSize = 768, IntermediateSize = 3072, NumHiddenLayers = 12, NumAttentionHeads = 12, NumKeyValueHeads = 12, VocabSize = 50257, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, TieWordEmbeddings = true, AttentionBias = true, MlpBias = true, HiddenAct = "gelu_new" },
        // Karpathy's llama2.c TinyStories 260K (the model in ../shared): tied embeddings, grouped-query attention.
        ["stories260K"] = new() { HiddenSize = 64, IntermediateSize = 172, NumHiddenLayers = 5, NumAttentionHeads = 8, NumKeyValueHeads = 4, VocabSize = 512, MaxPositionEmbeddings = 512, TieWordEmbeddings = true },
    };

    /// <summary>
    /// Encoder-decoders (T5) from their published config.json: t5 (relu, tied head rescaled), flan-t5 and mt0
    /// (t5 v1.1 / mT5: gated-gelu, untied lm_head; mT5's 250k vocabulary).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, T5Config> EncoderDecoder = new Dictionary<string, T5Config>(StringComparer.OrdinalIgnoreCase)
    {
        ["t5-small"] = new() { VocabSize = 32128, DModel = 512, DKv = 64, DFf = 2048, NumLayers = 6, NumDecoderLayers = 6, NumHeads = 8 },
        ["t5-base"] = new() { VocabSize = 32128, DModel = 768, DKv = 64, DFf = 3072, NumLayers = 12, NumDecoderLayers = 12, NumHeads = 12 },
        ["flan-t5-base"] = new() { VocabSize = 32128, DModel = 768, DKv = 64, DFf = 2048, NumLayers = 12, NumDecoderLayers = 12, NumHeads = 12, GatedFeedForward = true, DenseActivation = "gelu_new", TieWordEmbeddings = false },
        ["flan-t5-large"] = new() { VocabSize = 32128, DModel = 1024, DKv = 64, DFf = 2816, NumLayers = 24, NumDecoderLayers = 24, NumHeads = 16, GatedFeedForward = true, DenseActivation = "gelu_new", TieWordEmbeddings = false },
        ["mt0-xxl"] = new() { ModelType = "mt5", VocabSize = 250112, DModel = 4096, DKv = 64, DFf = 10240, NumLayers = 24, NumDecoderLayers = 24, NumHeads = 64, GatedFeedForward = true, DenseActivation = "gelu_new", TieWordEmbeddings = false },
    };

    public static bool IsEncoderDecoder(string name) => EncoderDecoder.ContainsKey(name);

    static RopeScaling Llama3Scaling(double factor) => new() { Type = RopeScaling.Llama3, Factor = factor, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 };

    /// <summary>The preset's architecture; an unknown name is an error that lists the known ones.</summary>
    public static ModelConfig Get(string name)
        => All.TryGetValue(name, out var c) ? c
            : IsEncoderDecoder(name) ? throw LoraShellException.InvalidArgument("EncoderDecoderPreset", $"'{name}' is an encoder-decoder preset; read it with ModelPresets.EncoderDecoder.", name)
            : throw LoraShellException.InvalidArgument("UnknownPreset", $"There is no model preset '{name}'. Known presets: {string.Join(", ", Names)}.", name);

    public static IEnumerable<string> Names => All.Keys.Concat(EncoderDecoder.Keys);
}
