using System.Text.RegularExpressions;
using LoraShell.Core.Models;

namespace LoraShell.Core.Lora;

/// <summary>
/// The one place that decides which modules an adapter targets, with PEFT's rules
/// (<c>check_target_module_exists</c>, <c>_maybe_include_all_linear_layers</c>):
/// <list type="bullet">
/// <item>a list of names: a module matches when its path equals a name or ends with "." + name
/// (so <c>q_proj</c> and <c>self_attn.q_proj</c> both select every query projection);</item>
/// <item>a single string: a regular expression that must match the whole path (re.fullmatch);</item>
/// <item><c>all-linear</c>: every Linear (or GPT-2 Conv1D) module except the output head;</item>
/// <item><c>layers_to_transform</c> then keeps the listed layer indices, found after <c>layers_pattern</c>
/// (or after any "name.N." when no pattern is given). As in PEFT it applies to name lists only, and a
/// path listed exactly is kept whatever its layer.</item>
/// </list>
/// Used by Add-LoraAdapter, adapter loading, Invoke-SvdDelta and tab completion alike.
/// </summary>
public static class TargetMatcher
{
    public const string AllLinear = "all-linear";

    // A target given on the command line is a module name (or a dotted suffix of a path) when it holds
    // only these characters; anything else is a regular expression.
    static readonly Regex NameCharacters = new(@"^[A-Za-z0-9_.\-]+$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Turns what a user typed (-TargetModules) into PEFT's two forms: a name list, or one regular
    /// expression (also for all-linear). A regex must be given alone; names may be many.
    /// </summary>
    public static (IReadOnlyList<string>? Names, string? Regex) FromUserValues(IReadOnlyList<string> values)
    {
        var cleaned = values.Select(v => v?.Trim() ?? "").ToList();
        if (cleaned.Count == 0 || cleaned.Any(v => v.Length == 0))
            throw LoraShellException.InvalidArgument("NoTargetModules", "Target modules are empty: name modules (e.g. q_proj, v_proj), give a regex, or use all-linear.");
        if (cleaned.Count == 1 && IsAllLinear(cleaned[0])) return (null, AllLinear);
        var patterns = cleaned.Where(v => !NameCharacters.IsMatch(v)).ToList();
        if (patterns.Count == 0) return (cleaned, null);
        if (cleaned.Count > 1)
            throw LoraShellException.InvalidArgument("RegexAmongNames",
                $"Target '{patterns[0]}' is a regular expression; give a regex alone, or only plain module names (q_proj, self_attn.q_proj, …). Got: {string.Join(", ", cleaned)}.", patterns[0]);
        try { _ = new Regex(cleaned[0]); }
        catch (ArgumentException e) { throw LoraShellException.InvalidArgument("InvalidTargetRegex", $"Target modules regex '{cleaned[0]}' is invalid: {e.Message}", cleaned[0]); }
        return (null, cleaned[0]);
    }

    public static bool IsAllLinear(string? value) => string.Equals(value?.Trim(), AllLinear, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// PEFT's check for one module path. <paramref name="isLinear"/> says whether the path is a Linear
    /// other than the output head (what all-linear selects).
    /// </summary>
    public static bool Matches(LoraConfig config, string modulePath, bool isLinear = true)
    {
        if (config.IsAllLinear) return isLinear && LayerAllowed(config, modulePath);
        if (config.TargetRegex is string regex) return Regex.IsMatch(modulePath, $"^(?:{regex})$", RegexOptions.CultureInvariant);
        var names = config.TargetModules!;
        if (names.Contains(modulePath)) return true;
        return names.Any(t => modulePath.EndsWith("." + t, StringComparison.Ordinal)) && LayerAllowed(config, modulePath);
    }

    static bool LayerAllowed(LoraConfig config, string modulePath)
    {
        if (config.LayersToTransform is not { Count: > 0 } layers) return true;
        return LayerIndex(modulePath, config.LayersPattern) is int index && layers.Contains(index);
    }

    /// <summary>The layer index in a module path: the number after <paramref name="layersPattern"/> ("layers", "h", …), or after the last "name.N." without one.</summary>
    public static int? LayerIndex(string modulePath, string? layersPattern)
    {
        string pattern = string.IsNullOrEmpty(layersPattern) ? @"^.*\.[^.]*\.(\d+)\." : $@"^.*\.{layersPattern}\.(\d+)\.";
        var m = Regex.Match(modulePath, pattern, RegexOptions.CultureInvariant);
        return m.Success && int.TryParse(m.Groups[1].Value, out int i) ? i : null;
    }

    /// <summary>The slots an adapter with this config wraps; the error lists the model's Linear modules when none match.</summary>
    public static List<LinearSlot> Select(IAdaptableModel model, LoraConfig config)
    {
        var slots = model.LinearSlots().ToList();
        var chosen = slots.Where(s => Matches(config, s.Path)).ToList();
        if (chosen.Count == 0 && !SelectsEmbedding(model, config))
        {
            string wanted = config.TargetRegex ?? string.Join(", ", config.TargetModules!);
            var shortNames = slots.Select(s => s.Name).Distinct();
            throw LoraShellException.InvalidArgument("NoTargetModulesMatched",
                $"Target modules '{wanted}'{(config.LayersToTransform is null ? "" : $" in layers [{string.Join(", ", config.LayersToTransform)}]")} match no Linear module of this model. " +
                $"Its Linear modules are {string.Join(", ", shortNames)} in layers 0..{model.LayerCount - 1} (e.g. '{slots[0].Path}'); " +
                "a name matches a path that equals it or ends with '.' + name, a single value with regex characters must match whole paths, or use all-linear.", wanted);
        }
        return chosen;
    }

    /// <summary>
    /// The listed target names that match no module of the model (a typo such as q_prj beside v_proj).
    /// PEFT raises only when nothing matches; the names that matched nothing are worth a warning.
    /// </summary>
    /// <summary>Whether the config targets the token embedding (by name or regex; all-linear never does, as in PEFT).</summary>
    public static bool SelectsEmbedding(IAdaptableModel model, LoraConfig config) => Matches(config, model.EmbeddingSlot().Path, isLinear: false);

    public static IReadOnlyList<string> UnmatchedNames(IAdaptableModel model, LoraConfig config)
    {
        if (config.IsAllLinear || config.TargetRegex is not null || config.TargetModules is null) return Array.Empty<string>();
        var paths = model.LinearSlots().Select(s => s.Path).Append(model.EmbeddingSlot().Path).ToList();
        return config.TargetModules
            .Where(t => !paths.Any(p => Matches(config with { TargetModules = new[] { t } }, p)))
            .ToList();
    }

    /// <summary>
    /// PEFT stores all-linear expanded to the base names of the modules it selected; so does LoraShell,
    /// so a saved adapter lists exactly what it wraps.
    /// </summary>
    public static LoraConfig Expand(LoraConfig config, IEnumerable<string> selectedPaths)
        => config.IsAllLinear
            ? config with { TargetModules = selectedPaths.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList(), TargetRegex = null }
            : config;
}
