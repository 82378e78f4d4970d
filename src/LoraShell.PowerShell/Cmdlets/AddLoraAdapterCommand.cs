using System.Collections;
using System.Globalization;
using System.Management.Automation;
using LoraShell.Core.Lora;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Add, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Injects a new LoRA adapter (ΔW = B·A beside the frozen weight) into a model's Linear layers.",
    "Add-LoraAdapter wraps each targeted Linear layer so that its output becomes W0·x + (alpha/r)·B·A·x, with A [r, in] and B [out, r]; B starts at zero (kaiming-uniform A), so the model's output is unchanged until training. -TargetModules takes module names (a name matches a module whose path equals it or ends with it), a regular expression that must match the whole module path (any value with regex characters), or all-linear (every Linear except the output head). Semantics and defaults are Hugging Face PEFT's (r 8, alpha 8), so the adapter saves in PEFT's format. -WhatIf is a dry run that lists the modules that would be wrapped and the parameter count. The new adapter becomes the active one; only its parameters (and biases per -Bias, and -ModulesToSave) are marked trainable. The model is passed through.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Rank 8 -Alpha 16 -TargetModules q_proj, v_proj |
        Get-LoraAdapter
    """,
    "Adds a rank-8 adapter to every q_proj and v_proj and lists it: 10 modules, 8,960 trainable parameters (3.3% of the model).",
    Output = """
    Name       Rank Alpha Modules   Trainable Trainable% Merged Active Targets
    ----       ---- ----- -------   --------- ---------- ------ ------ -------
    default       8    16      10       8,960     3.3310 False  True   q_proj,v_proj
    """)]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin
    $m | Add-LoraAdapter -TargetModules all-linear -Rank 4 -WhatIf
    """,
    "Dry run: shows which 35 Linear modules would be wrapped and how many parameters the adapter would add, without changing the model.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name pissa -Rank 16 -Alpha 16 `
            -TargetModules 'model\.layers\.[0-2]\..*_proj' -InitMethod Pissa -UseRsLora |
        Get-LoraAdapter
    """,
    "A PiSSA-initialised rsLoRA adapter on every projection of the first three layers, selected by a regular expression.")]
public sealed class AddLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model to adapt, usually piped from Import-LoraModel.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(HelpMessage = "Adapter name (default 'default'). A model can hold several adapters; the new one becomes active.")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "default";

    [Parameter(HelpMessage = "Rank r of the update B·A (default 8); at most min(in, out) of each targeted layer.")]
    [ValidateRange(1, 65536)]
    public int Rank { get; set; } = 8;

    [Parameter(HelpMessage = "lora_alpha (default 8); the update is scaled by alpha/r, or alpha/sqrt(r) with -UseRsLora.")]
    [ValidateRange(1e-9, 1e9)]
    public double Alpha { get; set; } = 8;

    [Parameter(HelpMessage = "Dropout on the adapter's input during training, in [0, 1) (default 0).")]
    [ValidateRange(0.0, 0.999999)]
    public double Dropout { get; set; }

    [Parameter(Position = 0, HelpMessage = "Modules to wrap: names such as q_proj,v_proj; a regular expression matching whole module paths; or all-linear (default PEFT's for the architecture: q_proj,v_proj; T5's q,v). Tab completion lists the model's Linear modules.")]
    [ArgumentCompleter(typeof(TargetModulesCompleter))]
    [ValidateNotNullOrEmpty]
    public string[]? TargetModules { get; set; }

    [Parameter(HelpMessage = "Which biases train and are saved with the adapter: none (default), all, or lora_only (biases of wrapped layers).")]
    public LoraBias Bias { get; set; } = LoraBias.none;

    [Parameter(HelpMessage = "Initialisation: Default (PEFT's: kaiming-uniform A, zero B), Gaussian (A ~ N(0, 1/r), zero B), Pissa (principal singular vectors of W0; W0 becomes the residual), or Random (A and B random, for tests).")]
    public LoraInit InitMethod { get; set; } = LoraInit.Default;

    [Parameter(HelpMessage = "Scale by alpha/sqrt(r) (rank-stabilised LoRA) instead of alpha/r.")]
    public SwitchParameter UseRsLora { get; set; }

    [Parameter(HelpMessage = "DoRA (weight-decomposed LoRA, PEFT's use_dora): the adapted weight is m·(W0 + s·B·A)/‖W0 + s·B·A‖ per output row, with a trained magnitude m that starts at ‖W0‖, so B·A learns the direction. Costs one [out] vector per module and, in training, the weight norm per step.")]
    public SwitchParameter UseDora { get; set; }

    [Parameter(HelpMessage = "Per-module ranks: a hashtable from a module-name pattern to a rank, e.g. @{ v_proj = 4 }. A key matches a path that ends with it (PEFT's rank_pattern).")]
    public Hashtable? RankPattern { get; set; }

    [Parameter(HelpMessage = "Per-module alphas: a hashtable from a module-name pattern to an alpha (PEFT's alpha_pattern).")]
    public Hashtable? AlphaPattern { get; set; }

    [Parameter(HelpMessage = "Only these layer indices get adapters (PEFT's layers_to_transform).")]
    public int[]? LayersToTransform { get; set; }

    [Parameter(HelpMessage = "Modules (besides the adapter) whose weights also train and are saved with the adapter, e.g. lm_head or norm.")]
    public string[]? ModulesToSave { get; set; }

    [Parameter(HelpMessage = "Token ids whose embedding rows train while the rest of the vocabulary stays frozen (PEFT's trainable_token_indices), e.g. the ids of chat tokens you added. The rows start as the base rows; a tied output head uses them too. Saved as token_adapter.trainable_tokens_delta.")]
    [ValidateNotNullOrEmpty]
    public int[]? TrainableTokenIndices { get; set; }

    [Parameter(HelpMessage = "Seed for the adapter's random initialisation.")]
    public long? Seed { get; set; }

    /// <summary>A -RankPattern / -AlphaPattern hashtable as numbers; a value that is not one is an error naming its key.</summary>
    static Dictionary<string, T> Pattern<T>(Hashtable? table, string parameter, Func<object?, T> convert)
    {
        var result = new Dictionary<string, T>();
        foreach (DictionaryEntry e in table ?? new Hashtable())
        {
            string key = e.Key?.ToString() ?? "";
            object? value = e.Value is PSObject ps ? ps.BaseObject : e.Value;
            try { result[key] = convert(value); }
            catch (Exception ex) when (ex is FormatException or InvalidCastException or OverflowException)
            {
                string message = $"-{parameter} maps '{key}' to '{value}', which is not a {(typeof(T) == typeof(int) ? "whole number" : "number")}.";
                throw parameter == nameof(RankPattern)
                    ? Core.LoraShellException.InvalidArgument("InvalidRankPattern", message, key)
                    : Core.LoraShellException.InvalidArgument("InvalidAlphaPattern", message, key);
            }
        }
        return result;
    }

    protected override void Process()
    {
        var (names, regex) = TargetMatcher.FromUserValues(TargetModules ?? Model.Loaded.Network.DefaultLoraTargets.ToArray());
        var config = new LoraConfig
        {
            TargetModules = names, TargetRegex = regex,
            R = Rank, LoraAlpha = Alpha, LoraDropout = Dropout, Bias = Bias.ToString(), Init = InitMethod,
            UseRsLora = UseRsLora,
            UseDora = UseDora,
            RankPattern = Pattern(RankPattern, nameof(RankPattern), v => checked((int)Convert.ToInt64(v, CultureInfo.InvariantCulture))),
            AlphaPattern = Pattern(AlphaPattern, nameof(AlphaPattern), v => Convert.ToDouble(v, CultureInfo.InvariantCulture)),
            LayersToTransform = LayersToTransform, ModulesToSave = ModulesToSave,
            TrainableTokenIndices = TrainableTokenIndices is null ? null : new Dictionary<string, IReadOnlyList<int>> { [LoraConfig.InputEmbedding] = TrainableTokenIndices },
            BaseModelNameOrPath = Model.Loaded.NameOrPath,
        };

        lock (Model.Gate)
        {
            var plan = Model.Loaded.Adapters.Plan(config);
            foreach (var unmatched in TargetMatcher.UnmatchedNames(Model.Loaded.Network, config))
                WriteWarning($"Target module '{unmatched}' matches no module of this model (its Linear modules: {string.Join(", ", Model.LinearModules.Select(m => m[(m.LastIndexOf('.') + 1)..]).Distinct())}); the adapter wraps the other targets only.");
            long parameters = plan.Sum(p => p.Parameters);
            // One entry per module name (q_proj in 22 layers is one entry), so -WhatIf stays readable.
            string what = $"Add LoRA adapter '{Name}' (r={Rank}, alpha={Alpha}) to {plan.Count} modules, {parameters:N0} parameters: " +
                          string.Join("; ", plan.GroupBy(p => (Short: p.ModulePath[(p.ModulePath.LastIndexOf('.') + 1)..], p.OutFeatures, p.InFeatures, p.Rank))
                              .Select(g => $"{g.Key.Short} [{g.Key.OutFeatures}x{g.Key.InFeatures}] r={g.Key.Rank} in {g.Count()} layer{(g.Count() == 1 ? "" : "s")}"))
                          + (TrainableTokenIndices is { Length: > 0 } ids ? $"; trains {ids.Length} token row{(ids.Length == 1 ? "" : "s")} of {Model.Loaded.Network.EmbeddingSlot().Path} ({string.Join(", ", ids.Take(8))}{(ids.Length > 8 ? ", …" : "")})" : "");
            if (!ShouldProcess(Model.Name, what)) return;
            Model.Loaded.Adapters.Add(Name, config, Seed);
            Model.Loaded.Adapters.MarkTrainable(Name);
            WriteVerbose(Model.Loaded.Adapters.Summary().ToString());
        }
        WriteObject(Model);
    }
}
