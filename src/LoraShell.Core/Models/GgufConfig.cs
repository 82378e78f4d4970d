using System.Text.Json.Nodes;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Models.Families;

namespace LoraShell.Core.Models;

/// <summary>
/// A GGUF file's architecture keys written out as the config.json its Hugging Face model would have,
/// then read by the family like any config.json: the same defaults, validation and errors, and an HF
/// export of the imported model carries a real config.json. What llama.cpp keeps only in tensors is
/// read from them: the vocabulary size, a tied head (no <c>output</c> tensor), biases, and Llama 3's
/// rope scaling, recovered from <c>rope_freqs</c>.
/// </summary>
public static class GgufConfig
{
    /// <summary>The family a GGUF architecture is imported as (Mistral files are llama.cpp's llama).</summary>
    public static ModelFamily FamilyOf(string arch, string source)
    {
        ModelFamily? family = arch switch
        {
            "llama" => ModelFamilies.Get(LlamaFamily.Type),
            "qwen2" or "qwen3" or "phi3" or "gpt2" => ModelFamilies.Get(arch),
            _ => null,
        };
        return family ?? throw LoraShellException.InvalidData("UnsupportedGgufArchitecture",
            $"'{source}' is a GGUF of architecture '{arch}'; LoraShell imports llama (also Mistral, TinyLlama, SmolLM), qwen2, qwen3, phi3 and gpt2.", source);
    }

    public static ModelConfig Read(GgufFile f)
    {
        string source = f.FilePath;
        string arch = Text(f, "general.architecture") ?? throw Missing(source, "general.architecture");
        var family = FamilyOf(arch, source);
        int Int(string key, long? fallback = null)
        {
            long n = f.Metadata.TryGetValue($"{arch}.{key}", out var v) && v.AsInteger is long stored ? stored
                : fallback ?? throw Missing(source, $"{arch}.{key}");
            return n is >= 0 and <= int.MaxValue ? (int)n
                : throw LoraShellException.InvalidData("InvalidGguf", $"'{source}' sets {arch}.{key} to {n}, not a count LoraShell can hold.", source);
        }
        double? Number(string key) => f.Metadata.TryGetValue($"{arch}.{key}", out var v) ? v.AsNumber : null;

        var embedding = f.Contains("token_embd.weight") ? f.Tensor("token_embd.weight") : throw MissingTensor(source, "token_embd.weight");
        int vocab = (int)Math.Min(int.MaxValue, embedding.Shape[0]);
        int hidden = Int("embedding_length"), heads = Int("attention.head_count");
        if (heads == 0) throw LoraShellException.InvalidData("InvalidGguf", $"'{source}' sets {arch}.attention.head_count to 0.", source);
        bool tied = !f.Contains("output.weight");
        var c = new JsonObject { ["model_type"] = family.ModelType, ["architectures"] = new JsonArray(family.Architecture), ["torch_dtype"] = "float32" };
        if (family is Gpt2Family)
        {
            c["n_embd"] = hidden;
            c["n_layer"] = Int("block_count");
            c["n_head"] = heads;
            c["n_inner"] = Int("feed_forward_length");
            c["n_positions"] = Int("context_length");
            c["vocab_size"] = vocab;
            c["layer_norm_epsilon"] = Number("attention.layer_norm_epsilon") ?? 1e-5;
            c["activation_function"] = "gelu_new";
            c["tie_word_embeddings"] = tied;
        }
        else
        {
            c["hidden_size"] = hidden;
            c["intermediate_size"] = Int("feed_forward_length");
            c["num_hidden_layers"] = Int("block_count");
            c["num_attention_heads"] = heads;
            c["num_key_value_heads"] = Int("attention.head_count_kv", heads);
            c["vocab_size"] = vocab;
            c["max_position_embeddings"] = Int("context_length");
            c["rms_norm_eps"] = Number("attention.layer_norm_rms_epsilon") ?? 1e-6;
            c["rope_theta"] = Number("rope.freq_base") ?? 10000.0;
            c["tie_word_embeddings"] = tied;
            c["hidden_act"] = "silu";
            int headDim = Int("attention.key_length", hidden / heads);
            if (headDim != hidden / heads || family is Qwen3Family) c["head_dim"] = headDim;
            int rotary = Int("rope.dimension_count", headDim);
            if (rotary != headDim)
            {
                if (family is not Phi3Family)
                    throw LoraShellException.InvalidData("UnsupportedGgufFeature", $"'{source}' rotates {rotary} of each head's {headDim} dimensions; LoraShell's {family.ModelType} rotates them all (partial rotary is Phi-3's).", source);
                c["partial_rotary_factor"] = (double)rotary / headDim;
            }
            if (family is LlamaFamily)
            {
                c["attention_bias"] = f.Contains("blk.0.attn_q.bias");
                c["mlp_bias"] = f.Contains("blk.0.ffn_up.bias");
            }
            if (family is Qwen2Family or Qwen3Family) c["use_sliding_window"] = false;
            if (family is Phi3Family) c["sliding_window"] = f.Metadata.ContainsKey($"{arch}.attention.sliding_window") ? Int("attention.sliding_window") : null;
            c["rope_scaling"] = RopeScaling(f, arch, c);
        }
        if (TokenId(f, "bos") is long bos and >= 0 and < int.MaxValue) c["bos_token_id"] = (int)bos;
        if (TokenId(f, "eos") is long eos and >= 0 and < int.MaxValue) c["eos_token_id"] = (int)eos;
        return family.ReadAndValidate(c, source);
    }

    static long? TokenId(GgufFile f, string which)
        => f.Metadata.TryGetValue($"tokenizer.ggml.{which}_token_id", out var v) ? v.AsInteger : null;

    static string? Text(GgufFile f, string key) => f.Metadata.TryGetValue(key, out var v) ? v.Value as string : null;

    static JsonNode? RopeScaling(GgufFile f, string arch, JsonObject c)
    {
        string? type = Text(f, $"{arch}.rope.scaling.type");
        if (type is "linear")
            return new JsonObject { ["type"] = "linear", ["factor"] = f.Metadata.TryGetValue($"{arch}.rope.scaling.factor", out var fac) ? fac.AsNumber : 1.0 };
        if (type is not (null or "none"))
            throw LoraShellException.InvalidData("UnsupportedRopeScaling", $"'{f.FilePath}' uses rope scaling '{type}', which LoraShell does not implement (it reads none, linear, and Llama 3's rope_freqs).", f.FilePath);
        if (!f.Contains("rope_freqs.weight")) return null;
        var info = f.Tensor("rope_freqs.weight");
        var factors = new float[info.ElementCount];
        f.ReadFloats(info, factors);
        return Llama3FromFactors(factors, c["rope_theta"]!.GetValue<double>(), c["head_dim"]?.GetValue<int>() ?? c["hidden_size"]!.GetValue<int>() / c["num_attention_heads"]!.GetValue<int>(), f.FilePath);
    }

    /// <summary>
    /// Llama 3's rope_scaling from llama.cpp's per-frequency divisors. A divisor is 1 where 1/λ (λ the
    /// wavelength) is above u = high_freq_factor / original_max, the factor where 1/λ is below
    /// v = low_freq_factor / original_max, and 1 / ((1 − s)/factor + s) between, with s = (1/λ − v)/(u − v).
    /// Only u and v show in the divisors: two points of the band fix them; with fewer, any u and v that put
    /// the kept, blended and scaled frequencies where they are reproduce them as well. The numbers are then
    /// scaled so original_max_position_embeddings is a whole number, and every divisor is recomputed as a check.
    /// </summary>
    static JsonObject Llama3FromFactors(float[] factors, double theta, int headDim, string source)
    {
        int dim = factors.Length * 2;
        var inv = Enumerable.Range(0, factors.Length).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / dim)).ToArray();
        var x = inv.Select(f => f / (2 * Math.PI)).ToArray();
        double factor = factors.Max();
        LoraShellException Unfit() => LoraShellException.InvalidData("UnsupportedRopeScaling",
            $"'{source}' carries rope_freqs that are not Llama 3's rope scaling (factors {string.Join(", ", factors.Take(8).Select(f => f.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)))}…); LoraShell cannot reproduce them.", source);
        if (factor <= 1 + 1e-6) return new JsonObject { ["rope_type"] = "default" };
        bool Kept(int i) => Math.Abs(factors[i] - 1) <= 1e-6;
        bool Scaled(int i) => Math.Abs(factors[i] - factor) <= 1e-6 * factor;
        var all = Enumerable.Range(0, factors.Length).ToList();
        var band = all.Where(i => !Kept(i) && !Scaled(i)).ToList();
        double scaledMax = all.Where(Scaled).Select(i => x[i]).DefaultIfEmpty(0).Max();
        double keptMin = all.Where(Kept).Select(i => x[i]).DefaultIfEmpty(double.PositiveInfinity).Min();
        double S(int i) => (1 / factors[i] - 1 / factor) / (1 - 1 / factor);
        double u, v;
        if (band.Count >= 2)
        {
            int a = band[0], b = band[^1];
            double slope = (S(a) - S(b)) / (x[a] - x[b]), intercept = S(a) - slope * x[a];
            if (slope <= 0) throw Unfit();
            v = -intercept / slope;
            u = v + 1 / slope;
        }
        else if (band.Count == 1)
        {
            int b = band[0];
            v = (scaledMax + x[b]) / 2;
            u = v + (x[b] - v) / S(b);
            for (int tries = 0; u >= keptMin && tries < 60; tries++) { v = (v + x[b]) / 2; u = v + (x[b] - v) / S(b); }
        }
        else
        {
            double top = double.IsPositiveInfinity(keptMin) ? 2 * scaledMax + 1 : keptMin;
            v = scaledMax + (top - scaledMax) / 3;
            u = scaledMax + 2 * (top - scaledMax) / 3;
        }
        if (!(v > 0) || !(u > v)) throw Unfit();
        double original = Math.Round(1 / v);
        if (original < 1) throw Unfit();
        var check = new RopeScaling { Type = Models.RopeScaling.Llama3, Factor = factor, LowFreqFactor = v * original, HighFreqFactor = u * original, OriginalMaxPositionEmbeddings = (int)original };
        var cfg = new ModelConfig { HiddenSize = headDim, NumAttentionHeads = 1, NumKeyValueHeads = 1, RopeTheta = theta, RopeScaling = check };
        var scaled = Blocks.RopeFrequencies.InverseFrequencies(cfg, 0);
        for (int i = 0; i < factors.Length; i++)
            if (Math.Abs(inv[i] / scaled[i] - factors[i]) > 1e-4 * factors[i]) throw Unfit();
        return new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = factor, ["low_freq_factor"] = check.LowFreqFactor, ["high_freq_factor"] = check.HighFreqFactor,
            ["original_max_position_embeddings"] = check.OriginalMaxPositionEmbeddings,
        };
    }

    static LoraShellException Missing(string source, string key)
        => LoraShellException.InvalidData("InvalidGguf", $"'{source}' lacks the metadata key '{key}' that a model file needs.", source);

    static LoraShellException MissingTensor(string source, string name)
        => LoraShellException.InvalidData("InvalidGguf", $"'{source}' has no tensor '{name}'; a model file needs one.", source);
}
