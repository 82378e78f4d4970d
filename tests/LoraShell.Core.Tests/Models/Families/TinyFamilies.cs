using System.Text.Json.Nodes;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.Families;

/// <summary>
/// Tiny random checkpoints of every family in Hugging Face layout, each configured so that its
/// distinguishing feature matters: rope frequencies in all three llama3 bands, a sliding window shorter
/// than the text, non-zero biases, q/k norms that are not all ones, fused projections with partial
/// rotary dimensions, Conv1D weights with learned positions.
/// </summary>
public static class TinyFamilies
{
    /// <summary>One test case: a name, its config.json, and what turning its feature off would be.</summary>
    public sealed record Case(string Name, JsonObject Config, Action<JsonObject>? FeatureOff = null, string Feature = "");

    public const int Vocab = 512; // stories260K's tok512 fits, so the tiny models can train on text
    public const int Sequence = 12;

    static JsonObject Rotary(string type, Action<JsonObject>? extra = null)
    {
        var c = new JsonObject
        {
            ["model_type"] = type, ["hidden_size"] = 32, ["intermediate_size"] = 48, ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = Vocab, ["max_position_embeddings"] = 64,
            ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["tie_word_embeddings"] = false, ["hidden_act"] = "silu",
            ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "float32",
        };
        extra?.Invoke(c);
        return c;
    }

    public static IReadOnlyList<Case> All { get; } = new[]
    {
        // head_dim 16 is wider than hidden / heads = 8; with original_max 32 the wavelengths 6.3, 19.9 and
        // 62.8+ fall in the high (kept), middle (blended) and low (scaled) bands.
        new Case("llama-llama3", Rotary("llama", c =>
        {
            c["head_dim"] = 16; c["attention_bias"] = true; c["mlp_bias"] = true;
            c["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 32 };
        }), c => c["rope_scaling"] = null, "llama3 rope scaling"),
        new Case("llama-linear", Rotary("llama", c => c["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 }),
            c => c["rope_scaling"] = null, "linear rope scaling"),
        // A text longer than max_position_embeddings, so the NTK base grows.
        new Case("llama-dynamic", Rotary("llama", c => { c["max_position_embeddings"] = 8; c["rope_scaling"] = new JsonObject { ["type"] = "dynamic", ["factor"] = 2.0 }; }),
            c => c["rope_scaling"] = null, "dynamic rope scaling"),
        new Case("mistral", Rotary("mistral", c => c["sliding_window"] = 3), c => c["sliding_window"] = null, "a sliding window of 3 < 12 tokens"),
        new Case("qwen2", Rotary("qwen2", c => c["use_sliding_window"] = false), null, "q/k/v biases"),
        new Case("qwen3", Rotary("qwen3", c => { c["head_dim"] = 16; c["tie_word_embeddings"] = true; c["attention_bias"] = false; }),
            null, "q/k RMSNorm and head_dim 16 != 32/4"),
        new Case("phi3", Rotary("phi3", c => { c["partial_rotary_factor"] = 0.5; c["sliding_window"] = 5; c["num_key_value_heads"] = 4; }),
            c => c["partial_rotary_factor"] = 1.0, "fused qkv/gate_up and partial rotary 0.5"),
        new Case("gpt2", new JsonObject
        {
            ["model_type"] = "gpt2", ["n_embd"] = 32, ["n_layer"] = 2, ["n_head"] = 4, ["n_positions"] = 16, ["n_inner"] = null,
            ["vocab_size"] = Vocab, ["layer_norm_epsilon"] = 1e-5, ["activation_function"] = "gelu_new", ["tie_word_embeddings"] = true,
            ["bos_token_id"] = 0, ["eos_token_id"] = 0, ["torch_dtype"] = "float32",
        }, null, "Conv1D [in, out], LayerNorm biases, learned positions"),
    };

    public static ModelConfig ConfigOf(Case c) => ModelConfig.FromJson(c.Config.ToJsonString(), c.Name);

    /// <summary>A model of the case's family with seeded random weights: norms around 1, biases and matrices non-zero.</summary>
    public static CausalLM Create(Case c, long seed = 7)
    {
        manual_seed(seed);
        var model = new CausalLM(ConfigOf(c));
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            string leaf = name[(name.LastIndexOf('.') + 1)..];
            bool norm = name.Contains("norm") || name.Contains(".ln_");
            if (norm && leaf == "weight") p.copy_(1 + 0.2 * randn_like(p));
            else if (leaf == "bias") p.copy_(0.1 * randn_like(p));
            else if (name.Contains("embed") || name.Contains(".wte.") || name.Contains(".wpe.")) p.copy_(0.5 * randn_like(p));
            else p.copy_(randn_like(p) / Math.Sqrt(p.shape[p.FanInFanOutDim(name)]));
        }
        return model;
    }

    static int FanInFanOutDim(this Tensor p, string name) => name.Contains(".c_attn.") || name.Contains(".c_proj.") || name.Contains(".c_fc.") ? 0 : 1;

    /// <summary>Token ids [batch 2, 12]: deterministic, every id in range.</summary>
    public static long[][] Ids { get; } =
    {
        Enumerable.Range(0, Sequence).Select(i => (long)((i * 37 + 5) % Vocab)).ToArray(),
        Enumerable.Range(0, Sequence).Select(i => (long)((i * 11 + 60) % Vocab)).ToArray(),
    };

    public static Tensor IdTensor() => tensor(Ids.SelectMany(r => r).ToArray(), new long[] { Ids.Length, Sequence });

    /// <summary>A random LoRA adapter on every Linear with a per-module rank and alpha, so scaling rules matter.</summary>
    public static LoraConfig Adapter(CausalLM model)
    {
        var names = model.LinearSlots().Select(s => s.Name).Distinct().ToList();
        return new LoraConfig
        {
            R = 4, LoraAlpha = 8, TargetRegex = TargetMatcher.AllLinear, Init = LoraInit.Random,
            RankPattern = new Dictionary<string, int> { [names[0]] = 2 },
            AlphaPattern = new Dictionary<string, double> { [names[^1]] = 3 },
        };
    }
}
