using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.Families;

/// <summary>Typed reads of config.json keys, with errors that name the file, the key and the value.</summary>
public sealed class ConfigReader
{
    public ConfigReader(JsonObject json, string source)
    {
        Json = json;
        Source = source;
    }

    public JsonObject Json { get; }
    public string Source { get; }

    public bool Has(string key) => Json[key] is not null;

    LoraShellException Bad(string key, string expected)
        => LoraShellException.InvalidData("InvalidModelConfig", $"'{Source}': key '{key}' should be {expected}, got {Json[key]!.ToJsonString()}.", Source);

    public int Int(string key, int fallback)
    {
        if (Json[key] is not JsonValue v) return Json[key] is null ? fallback : throw Bad(key, "an integer");
        if (v.TryGetValue<int>(out int i)) return i;
        if (v.TryGetValue<long>(out long l)) throw Bad(key, "an integer that fits 32 bits");
        if (v.TryGetValue<double>(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        throw Bad(key, "an integer");
    }

    public int? NullableInt(string key) => Json[key] is null ? null : Int(key, 0);

    public double Double(string key, double fallback)
    {
        if (Json[key] is null) return fallback;
        if (Json[key] is JsonValue v && v.TryGetValue<double>(out double d) && double.IsFinite(d)) return d;
        throw Bad(key, "a finite number");
    }

    public bool Bool(string key, bool fallback)
    {
        if (Json[key] is null) return fallback;
        if (Json[key] is JsonValue v && v.TryGetValue<bool>(out bool b)) return b;
        throw Bad(key, "true or false");
    }

    public string String(string key, string fallback)
    {
        if (Json[key] is null) return fallback;
        if (Json[key] is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw Bad(key, "a string");
    }

    /// <summary>An id or the first of a list of ids (eos_token_id may be either).</summary>
    public int FirstId(string key, int fallback) => Json[key] switch
    {
        null => fallback,
        JsonArray { Count: > 0 } a when a[0] is JsonValue first && first.TryGetValue<int>(out int id) => id,
        JsonValue => Int(key, fallback),
        _ => throw Bad(key, "a token id or a list of them"),
    };

    public void RequireKeys(params string[] keys)
    {
        var missing = keys.Where(k => Json[k] is null).ToList();
        if (missing.Count > 0)
            throw LoraShellException.InvalidData("ModelConfigMissingKeys",
                $"'{Source}' is missing required key(s): {string.Join(", ", missing)}. A {String("model_type", "llama")} config.json needs {string.Join(", ", keys)}.", Source);
    }

    /// <summary>rope_scaling (or transformers 5's rope_parameters), refusing types this family does not implement.</summary>
    public RopeScaling? RopeScaling(IReadOnlyCollection<string> supported)
    {
        var node = Json["rope_scaling"] as JsonObject ?? (Json["rope_parameters"] is JsonObject p && (p["rope_type"] ?? p["type"]) is not null ? p : null);
        if (node is null)
        {
            if (Json["rope_scaling"] is not null and not JsonObject) throw Bad("rope_scaling", "an object or null");
            return null;
        }
        string type = (string?)(node["rope_type"] ?? node["type"])
            ?? throw LoraShellException.InvalidData("InvalidRopeScaling", $"'{Source}' sets rope_scaling without a type (\"rope_type\" or \"type\"); transformers refuses it too.", Source);
        if (type == "default") return null;
        // transformers' rope_config_validation: the keys each type cannot do without.
        string[] required = type switch
        {
            Models.RopeScaling.Linear or Models.RopeScaling.Dynamic => new[] { "factor" },
            Models.RopeScaling.Llama3 => new[] { "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings" },
            _ => Array.Empty<string>(),
        };
        var missing = required.Where(k => node[k] is null).ToList();
        if (missing.Count > 0)
            throw LoraShellException.InvalidData("InvalidRopeScaling",
                $"'{Source}' sets rope_scaling of type '{type}' without {string.Join(", ", missing)}; that type needs {string.Join(", ", required)}, and transformers refuses it too.", Source);
        if (!supported.Contains(type))
            throw LoraShellException.InvalidData("UnsupportedRopeScaling",
                $"'{Source}' sets rope_scaling type '{type}', which LoraShell does not implement for {String("model_type", "llama")}; supported: {(supported.Count == 0 ? "none" : string.Join(", ", supported))}.", Source);
        var r = new ConfigReader(node, Source + " (rope_scaling)");
        return new RopeScaling
        {
            Type = type,
            Factor = r.Double("factor", 1),
            LowFreqFactor = r.Double("low_freq_factor", 1),
            HighFreqFactor = r.Double("high_freq_factor", 4),
            OriginalMaxPositionEmbeddings = r.Int("original_max_position_embeddings", 8192),
        };
    }
}
