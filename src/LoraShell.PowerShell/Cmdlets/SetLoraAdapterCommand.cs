using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Set, "LoraAdapter")]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Chooses which of a model's adapters are active.",
    "Set-LoraAdapter makes the named adapters, and only them, active: their updates are added to the layers' outputs, and the first one's parameters are marked trainable. Other adapters stay in the model, inactive. The model is passed through.")]
[CmdletExample(
    "Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -Name a | Add-LoraAdapter -Name b | Set-LoraAdapter -Name a | Get-LoraAdapter",
    "Two adapters; a is made active again after b was added.")]
[CmdletExample(
    "Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -Name a | Add-LoraAdapter -Name b -TargetModules o_proj | Set-LoraAdapter -Name a, b | Get-LoraAdapter",
    "Both adapters active at once.")]
public sealed class SetLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model holding the adapters.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Adapter name(s) to make active.")]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    protected override void Process()
    {
        lock (Model.Gate)
        {
            Model.Loaded.Adapters.SetActive(Name);
            Model.Loaded.Adapters.MarkTrainable(Name[0]);
        }
        WriteObject(Model);
    }
}
