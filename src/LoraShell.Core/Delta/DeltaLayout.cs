using LoraShell.Core.Models;
using LoraShell.Core.Models.Families;

namespace LoraShell.Core.Delta;

/// <summary>
/// How a checkpoint's tensors map to PEFT module paths, and which matrices are stored [in, out]
/// (GPT-2's Conv1D, PEFT's fan_in_fan_out): from the family in the base's config.json when there is
/// one, else from GPT-2's, the one family stored that way; the names come from the family's layout.
/// </summary>
internal sealed class DeltaLayout
{
    readonly ModelConfig? _config;

    DeltaLayout(ModelConfig? config) => _config = config;

    /// <summary>The layout of the checkpoint at <paramref name="basePath"/> (an HF folder or a .safetensors file beside a config.json).</summary>
    public static DeltaLayout Of(string basePath)
    {
        string full = Path.GetFullPath(basePath);
        string folder = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        string configPath = Path.Combine(folder, HuggingFaceLoader.ConfigFileName);
        return new DeltaLayout(File.Exists(configPath) ? ModelConfig.FromJson(File.ReadAllText(configPath), configPath) : null);
    }

    /// <summary>A tensor's name in the family's canonical layout (GPT-2's "transformer." prefix added where a checkpoint lacks it).</summary>
    public string Canonical(string tensorName) => _config?.Family.CanonicalName(tensorName, _config with { TieWordEmbeddings = false }) ?? tensorName;

    /// <summary>
    /// On a model with a tied head, the head's weight name when <paramref name="tensorName"/> is the embedding's:
    /// a full fine-tune changed both, and a PEFT adapter's modules_to_save copy of the embedding leaves the head on
    /// the base weight, so the head needs its own copy. Null otherwise.
    /// </summary>
    public string? TiedHeadOf(string tensorName)
    {
        if (_config is not { TieWordEmbeddings: true } c) return null;
        var l = c.Family.Layout;
        return Canonical(tensorName) == $"{l.Backbone}.{l.Embedding}.weight" ? $"{FamilyLayout.Head}.weight" : null;
    }

    /// <summary>The PEFT module path of a weight tensor (the canonical name without ".weight").</summary>
    public string ModulePath(string tensorName)
    {
        string name = Canonical(tensorName);
        return name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^".weight".Length] : name;
    }

    /// <summary>The module a parameter belongs to (the canonical name without its last segment), for modules_to_save.</summary>
    public string ParameterModule(string tensorName)
    {
        string name = Canonical(tensorName);
        int dot = name.LastIndexOf('.');
        return dot < 0 ? name : name[..dot];
    }

    /// <summary>Whether the matrix is stored [in, out] and its delta must be transposed into PEFT's [out, in] orientation.</summary>
    public bool FanInFanOut(string tensorName)
    {
        var l = (_config?.Family ?? ModelFamilies.Get("gpt2")).Layout;
        if (l.Storage != ProjectionStorage.Conv1D) return false;
        var weights = l.AttentionProjections.Select(p => $"{l.Attention}.{p.Name}.weight").Concat(l.FeedForwardProjections.Select(p => $"{l.FeedForward}.{p.Name}.weight"));
        return weights.Any(w => tensorName == w || tensorName.EndsWith("." + w, StringComparison.Ordinal));
    }
}
