using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Remove, "LoraAdapter", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Deletes an adapter from a model.",
    "Remove-LoraAdapter deletes the named adapter's factors from every layer. A merged adapter must be unmerged first (Merge-LoraWeights -Unmerge), since its update lives in the base weights. It writes nothing unless -PassThru is given, when it writes the model.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name trial |
        Remove-LoraAdapter -Name trial -PassThru |
        Get-LoraAdapter
    """,
    "Adds and removes an adapter; nothing is listed afterwards.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin | Add-LoraAdapter
    $m | Remove-LoraAdapter -Name default -WhatIf
    """,
    "Shows what would be removed.")]
public sealed class RemoveLoraAdapterCommand : AdapterStateCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, HelpMessage = "Adapter name(s) to delete; bound from the Name of adapters piped from Get-LoraAdapter.")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    protected override void Process()
    {
        // -Name binds from the Name of piped adapters; a piped model's own Name is not one.
        if (!MyInvocation.BoundParameters.ContainsKey(nameof(Name)) || (Name is [var only] && only == Model.Name && !Model.Loaded.Adapters.Contains(only)))
            Fail(Core.LoraErrorKind.InvalidArgument, "AdapterNameRequired", $"Name the adapter(s) to remove with -Name, or pipe them from Get-LoraAdapter. Adapters of '{Model.Name}': {(Model.Adapters.Length == 0 ? "(none)" : string.Join(", ", Model.Adapters))}.", Model.Name);
        Change($"Remove LoRA adapter(s) {string.Join(", ", Name.Select(n => $"'{n}'"))}", () =>
        {
            foreach (var n in Name) Model.Loaded.Adapters.Delete(n);
        });
    }
}
