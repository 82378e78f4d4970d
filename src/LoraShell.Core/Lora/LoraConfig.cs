using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace LoraShell.Core.Lora;

/// <summary>
/// A LoRA adapter's configuration with Hugging Face PEFT's fields, defaults and JSON names
/// (<c>adapter_config.json</c>). Unknown keys read from a file are kept and written back.
/// </summary>
public sealed record LoraConfig
{
    public int R { get; init; } = 8;
    public double LoraAlpha { get; init; } = 8;
    public double LoraDropout { get; init; }
    /// <summary>Module names (exact path or path suffix), or null when <see cref="TargetRegex"/> is used.</summary>
    public IReadOnlyList<string>? TargetModules { get; init; } = new[] { "q_proj", "v_proj" };
    /// <summary>A regular expression that must match a module's whole path (PEFT's string form), or "all-linear".</summary>
    public string? TargetRegex { get; init; }
    public string Bias { get; init; } = "none";
    public bool FanInFanOut { get; init; }
    public LoraInit Init { get; init; } = LoraInit.Default;
    public bool UseRsLora { get; init; }
    public bool UseDora { get; init; }
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>
    /// PEFT's trainable_token_indices: token ids whose embedding rows train while the rest of the vocabulary stays
    /// frozen, by module name (PEFT's dict form); the key <see cref="InputEmbedding"/> ("") stands for PEFT's list
    /// form, which means the model's input embedding. Null when the adapter trains no token rows.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<int>>? TrainableTokenIndices { get; init; }

    /// <summary>The <see cref="TrainableTokenIndices"/> key of PEFT's list form: the model's input embedding.</summary>
    public const string InputEmbedding = "";

    /// <summary>
    /// Whether modules_to_save takes the module at <paramref name="modulePath"/>: its path ends with an entry, as plain
    /// text, as PEFT's _set_trainable matches (key.endswith(target_key)), so "norm" takes model.norm and every *_layernorm.
    /// </summary>
    public static bool SavesModule(IReadOnlyList<string>? modulesToSave, string modulePath)
        => modulesToSave?.Any(m => modulePath.EndsWith(m, StringComparison.Ordinal)) == true;
    public IReadOnlyList<int>? LayersToTransform { get; init; }
    public string? LayersPattern { get; init; }
    public string? BaseModelNameOrPath { get; init; }
    public string TaskType { get; init; } = "CAUSAL_LM";
    public string? Revision { get; init; }
    /// <summary>Keys from a loaded file that LoraShell does not use; written back unchanged.</summary>
    public IReadOnlyDictionary<string, JsonNode?> ExtraKeys { get; init; } = new Dictionary<string, JsonNode?>();

    public const string AllLinear = "all-linear";
    public bool IsAllLinear => string.Equals(TargetRegex, AllLinear, StringComparison.OrdinalIgnoreCase)
        || (TargetModules is { Count: 1 } t && string.Equals(t[0], AllLinear, StringComparison.OrdinalIgnoreCase));

    /// <summary>Checks the values that do not depend on the model.</summary>
    public void Validate()
    {
        if (R < 1) throw LoraShellException.InvalidArgument("InvalidRank", $"Rank r must be at least 1 (got {R}).", R);
        if (!(LoraAlpha > 0) || double.IsInfinity(LoraAlpha)) throw LoraShellException.InvalidArgument("InvalidAlpha", $"lora_alpha must be a positive number (got {LoraAlpha}).", LoraAlpha);
        if (!(LoraDropout >= 0 && LoraDropout < 1)) throw LoraShellException.InvalidArgument("InvalidDropout", $"lora_dropout must be in [0, 1) (got {LoraDropout}).", LoraDropout);
        if (Bias is not ("none" or "all" or "lora_only"))
            throw LoraShellException.InvalidArgument("InvalidBias", $"bias must be 'none', 'all' or 'lora_only' (got '{Bias}').", Bias);
        if ((TargetModules == null || TargetModules.Count == 0) && string.IsNullOrEmpty(TargetRegex))
            throw LoraShellException.InvalidArgument("NoTargetModules", "target_modules is empty: name modules (e.g. q_proj, v_proj), give a regex, or use all-linear.");
        if (TargetRegex != null && !IsAllLinear)
        {
            try { _ = new Regex(TargetRegex); }
            catch (ArgumentException e) { throw LoraShellException.InvalidArgument("InvalidTargetRegex", $"target_modules regex '{TargetRegex}' is invalid: {e.Message}", TargetRegex); }
        }
        foreach (var (key, rank) in RankPattern)
            if (rank < 1) throw LoraShellException.InvalidArgument("InvalidRank", $"rank_pattern['{key}'] = {rank}; ranks must be at least 1.", key);
        foreach (var (key, alpha) in AlphaPattern)
            if (!(alpha > 0)) throw LoraShellException.InvalidArgument("InvalidAlpha", $"alpha_pattern['{key}'] = {alpha}; alphas must be positive.", key);
        foreach (var (module, indices) in TrainableTokenIndices ?? new Dictionary<string, IReadOnlyList<int>>())
        {
            string where = module.Length == 0 ? "trainable_token_indices" : $"trainable_token_indices['{module}']";
            if (indices.Count == 0)
                throw LoraShellException.InvalidArgument("InvalidTokenIndices", $"{where} is empty; name at least one token id.", module);
            if (indices.FirstOrDefault(i => i < 0) is int negative && negative < 0)
                throw LoraShellException.InvalidArgument("InvalidTokenIndices", $"{where} holds {negative}; token ids are 0 or more.", negative);
            var repeated = indices.GroupBy(i => i).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            if (repeated.Count > 0)
                throw LoraShellException.InvalidArgument("InvalidTokenIndices", $"{where} names token {string.Join(", ", repeated)} more than once; each row can be trained once.", repeated);
        }
    }

    /// <summary>PEFT's pattern rule: the first key such that the path matches <c>(.*\.)?(KEY)$</c>.</summary>
    static string? PatternKey(IEnumerable<string> keys, string modulePath)
        => keys.FirstOrDefault(k => Regex.IsMatch(modulePath, $"^(.*\\.)?({k})$"));

    /// <summary>rank_pattern and alpha_pattern keys that match none of <paramref name="modulePaths"/> (they change nothing; often a typo).</summary>
    public IEnumerable<(string Pattern, string Key)> UnusedPatternKeys(IReadOnlyCollection<string> modulePaths)
        => RankPattern.Keys.Where(k => !modulePaths.Any(p => PatternKey(new[] { k }, p) is not null)).Select(k => ("rank_pattern", k))
            .Concat(AlphaPattern.Keys.Where(k => !modulePaths.Any(p => PatternKey(new[] { k }, p) is not null)).Select(k => ("alpha_pattern", k)));

    public int RankFor(string modulePath) => PatternKey(RankPattern.Keys, modulePath) is string k ? RankPattern[k] : R;

    public double AlphaFor(string modulePath) => PatternKey(AlphaPattern.Keys, modulePath) is string k ? AlphaPattern[k] : LoraAlpha;

    public double ScalingFor(string modulePath)
    {
        int r = RankFor(modulePath);
        double alpha = AlphaFor(modulePath);
        return UseRsLora ? alpha / Math.Sqrt(r) : alpha / r;
    }

    // ---- adapter_config.json ----

    static readonly HashSet<string> KnownKeys = new(StringComparer.Ordinal)
    {
        "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "fan_in_fan_out",
        "use_rslora", "use_dora", "init_lora_weights", "rank_pattern", "alpha_pattern", "modules_to_save",
        "layers_to_transform", "layers_pattern", "base_model_name_or_path", "inference_mode", "revision",
        "trainable_token_indices",
    };

    /// <summary>The config as PEFT writes it: sorted keys, indent 2, inference_mode true.</summary>
    public string ToJson()
    {
        var obj = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (k, v) in ExtraKeys) obj[k] = v?.DeepClone();
        obj["alpha_pattern"] = new JsonObject(AlphaPattern.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));
        obj["base_model_name_or_path"] = BaseModelNameOrPath;
        obj["bias"] = Bias;
        obj["fan_in_fan_out"] = FanInFanOut;
        obj["inference_mode"] = true;
        obj["init_lora_weights"] = Init switch
        {
            LoraInit.Default => JsonValue.Create(true),
            LoraInit.Random => JsonValue.Create(false),
            LoraInit.Gaussian => JsonValue.Create("gaussian"),
            _ => JsonValue.Create("pissa"),
        };
        obj["layers_pattern"] = LayersPattern;
        obj["layers_to_transform"] = LayersToTransform is null ? null : new JsonArray(LayersToTransform.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());
        obj["lora_alpha"] = Number(LoraAlpha);
        obj["lora_dropout"] = LoraDropout;
        obj["modules_to_save"] = ModulesToSave is null ? null : new JsonArray(ModulesToSave.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray());
        obj["peft_type"] = "LORA";
        obj["r"] = R;
        obj["rank_pattern"] = new JsonObject(RankPattern.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));
        obj["revision"] = Revision;
        obj["target_modules"] = TargetRegex is not null ? JsonValue.Create(TargetRegex)
            : new JsonArray(TargetModules!.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray());
        obj["task_type"] = TaskType;
        obj["trainable_token_indices"] = TrainableTokenIndices switch
        {
            null => null,
            { Count: 1 } t when t.ContainsKey(InputEmbedding) => Ints(t[InputEmbedding]),
            var t => new JsonObject(t.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)Ints(p.Value)))),
        };
        obj["use_dora"] = UseDora;
        obj["use_rslora"] = UseRsLora;
        var root = new JsonObject(obj);
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 });
    }

    static JsonArray Ints(IEnumerable<int> values) => new(values.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());

    // PEFT writes integral alphas as ints (lora_alpha: 16), which is what its readers expect too.
    static JsonNode Number(double v) => v == Math.Floor(v) && Math.Abs(v) < int.MaxValue ? JsonValue.Create((int)v) : JsonValue.Create(v);

    /// <summary>Reads <c>adapter_config.json</c>; <paramref name="warn"/> receives a note for each unknown key.</summary>
    public static LoraConfig FromJson(string json, string source, Action<string>? warn = null)
    {
        JsonObject obj;
        try { obj = JsonNode.Parse(json) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw LoraShellException.InvalidData("InvalidAdapterConfig", $"'{source}' is not a valid JSON object ({e.Message}).", source); }

        LoraShellException Bad(string what) => LoraShellException.InvalidData("InvalidAdapterConfig", $"'{source}': {what}.", source);
        string peftType = (string?)obj["peft_type"] ?? "LORA";
        if (!string.Equals(peftType, "LORA", StringComparison.OrdinalIgnoreCase))
            throw Bad($"peft_type is '{peftType}'; LoraShell reads LORA adapters");
        if (obj["r"] is null) throw Bad("the required key 'r' is missing");

        T Get<T>(string key, T fallback)
        {
            var node = obj[key];
            if (node is null) return fallback;
            try { return node.GetValue<T>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException) { throw Bad($"'{key}' should be a {typeof(T).Name}, got {node.ToJsonString()}"); }
        }

        IReadOnlyList<string>? targets = null;
        string? regex = null;
        switch (obj["target_modules"])
        {
            case JsonArray a: targets = a.Select(n => (string?)n ?? "").ToList(); break;
            case JsonValue v when v.TryGetValue<string>(out var s): regex = s; break;
            case null: break;
            default: throw Bad("'target_modules' must be a list of names or a regex string");
        }

        var init = obj["init_lora_weights"] switch
        {
            null => LoraInit.Default,
            JsonValue v when v.TryGetValue<bool>(out var b) => b ? LoraInit.Default : LoraInit.Random,
            JsonValue v when v.TryGetValue<string>(out var s) => s.ToLowerInvariant() switch
            {
                "gaussian" => LoraInit.Gaussian,
                "pissa" => LoraInit.Pissa,
                _ when s.StartsWith("pissa", StringComparison.OrdinalIgnoreCase) => LoraInit.Pissa,
                _ => throw Bad($"init_lora_weights '{s}' is not supported (true, false, gaussian, pissa)"),
            },
            var other => throw Bad($"init_lora_weights {other!.ToJsonString()} is not supported"),
        };

        IReadOnlyList<int> TokenIds(JsonArray a, string key)
            => a.Select(n => n is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw Bad($"{key} should hold integer token ids, got {n?.ToJsonString() ?? "null"}")).ToList();

        var extra = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (k, v) in obj)
        {
            if (KnownKeys.Contains(k)) continue;
            extra[k] = v?.DeepClone();
            warn?.Invoke($"'{source}': key '{k}' is not used by LoraShell; kept and ignored.");
        }

        var config = new LoraConfig
        {
            R = Get("r", 8),
            LoraAlpha = Get("lora_alpha", 8.0),
            LoraDropout = Get("lora_dropout", 0.0),
            TargetModules = targets,
            TargetRegex = regex,
            Bias = Get("bias", "none"),
            FanInFanOut = Get("fan_in_fan_out", false),
            Init = init,
            UseRsLora = Get("use_rslora", false),
            UseDora = Get("use_dora", false),
            RankPattern = (obj["rank_pattern"] as JsonObject)?.ToDictionary(p => p.Key, p => p.Value!.GetValue<int>()) ?? new Dictionary<string, int>(),
            AlphaPattern = (obj["alpha_pattern"] as JsonObject)?.ToDictionary(p => p.Key, p => p.Value!.GetValue<double>()) ?? new Dictionary<string, double>(),
            ModulesToSave = (obj["modules_to_save"] as JsonArray)?.Select(n => (string?)n ?? "").ToList(),
            TrainableTokenIndices = obj["trainable_token_indices"] switch
            {
                null => null,
                JsonArray a => new Dictionary<string, IReadOnlyList<int>> { [InputEmbedding] = TokenIds(a, "trainable_token_indices") },
                JsonObject o => o.ToDictionary(p => p.Key, p => p.Value is JsonArray a ? TokenIds(a, $"trainable_token_indices['{p.Key}']")
                    : throw Bad($"trainable_token_indices['{p.Key}'] should be a list of token ids, got {p.Value?.ToJsonString() ?? "null"}"), StringComparer.Ordinal),
                var other => throw Bad($"trainable_token_indices should be a list of token ids or an object of module name to list, got {other.ToJsonString()}"),
            },
            LayersToTransform = obj["layers_to_transform"] switch
            {
                JsonArray a => a.Select(n => n!.GetValue<int>()).ToList(),
                JsonValue v when v.TryGetValue<int>(out var i) => new[] { i },
                _ => null,
            },
            LayersPattern = obj["layers_pattern"] is JsonValue lp && lp.TryGetValue<string>(out var lps) ? lps : null,
            BaseModelNameOrPath = (string?)obj["base_model_name_or_path"],
            TaskType = (string?)obj["task_type"] ?? "CAUSAL_LM",
            Revision = (string?)obj["revision"],
            ExtraKeys = extra,
        };
        try { config.Validate(); }
        catch (LoraShellException e) { throw LoraShellException.InvalidData("InvalidAdapterConfig", $"'{source}': {e.Message}", source); }
        return config;
    }
}
