using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Get, "LoraAdapter")]
[OutputType(typeof(LoraAdapter))]
[CmdletHelp(
    "Lists a model's LoRA adapters: name, rank, alpha, targets, trainable parameters, merged and active state.",
    "Get-LoraAdapter writes one LoraShell.LoraAdapter per adapter of the model (or per adapter whose name matches -Name, wildcards allowed), with its rank, alpha, scaling, the short names and full paths of the wrapped modules, its parameter count next to the model's total (PEFT's trainable% figure), and whether it is merged into the base weights and active.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Rank 8 -Alpha 16 -TargetModules q_proj,v_proj |
        Get-LoraAdapter
    """,
    "Shows the new adapter: rank 8, alpha 16, targets q_proj and v_proj, 8,960 trainable parameters.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name a |
        Add-LoraAdapter -Name b -TargetModules down_proj
    Get-LoraAdapter -Model $m -Name b | Select-Object -ExpandProperty Modules
    """,
    "Lists the module paths adapter b wraps.",
    Output = """
    model.layers.0.mlp.down_proj
    model.layers.1.mlp.down_proj
    model.layers.2.mlp.down_proj
    model.layers.3.mlp.down_proj
    model.layers.4.mlp.down_proj
    """)]
public sealed class GetLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model whose adapters to list.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Position = 0, HelpMessage = "Adapter name(s) to show; wildcards allowed. Default: all.")]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string[]? Name { get; set; }

    protected override void Process()
    {
        lock (Model.Gate)
        {
            var patterns = (Name ?? new[] { "*" }).Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
            // Decided before anything is written: the next command in the pipeline may remove what this one
            // lists (Get-LoraAdapter | Remove-LoraAdapter).
            var listed = Model.Loaded.Adapters.Names.Where(n => patterns.Any(p => p.IsMatch(n))).ToList();
            var missing = (Name ?? Array.Empty<string>()).Where(n => !WildcardPattern.ContainsWildcardCharacters(n) && !Model.Loaded.Adapters.Contains(n)).ToList();
            var all = Model.Adapters;
            foreach (var n in listed)
                WriteObject(new LoraAdapter(Model, Model.Loaded.Adapters.Info(n)));
            foreach (var requested in missing)
                WriteError(ToErrorRecord(Core.LoraShellException.NotFound("AdapterNotFound",
                    $"The model has no adapter named '{requested}'. Adapters: {(all.Length == 0 ? "(none)" : string.Join(", ", all))}.", requested)));
        }
    }
}
