using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsLifecycle.Disable, "LoraAdapter")]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Turns all adapters off: the model computes its base output only.",
    "Disable-LoraAdapter makes every LoRA layer return the base layer's output exactly; merged adapters are unmerged first, as PEFT's disable does. Enable-LoraAdapter turns the active adapters back on. The model is passed through.")]
[CmdletExample(
    "$m = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -InitMethod Random; ($m | Disable-LoraAdapter | Measure-LoraPerplexity -Text 'Tom had a ball.').Loss",
    "The base model's loss, with the adapter still loaded but off.")]
[CmdletExample(
    "$m = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter; $m | Disable-LoraAdapter | Enable-LoraAdapter | Get-LoraAdapter",
    "Off and on again.")]
public sealed class DisableLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model whose adapters to turn off.")]
    public LoraModel Model { get; set; } = null!;

    protected override void Process()
    {
        lock (Model.Gate) Model.Loaded.Adapters.Disable();
        WriteObject(Model);
    }
}

[Cmdlet(VerbsLifecycle.Enable, "LoraAdapter")]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Turns a model's active adapters back on after Disable-LoraAdapter.",
    "Enable-LoraAdapter undoes Disable-LoraAdapter: the active adapters' updates are added to the layers' outputs again. The model is passed through.")]
[CmdletExample(
    "$m = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter; $m | Disable-LoraAdapter | Enable-LoraAdapter | Get-LoraAdapter",
    "The adapter is active again.")]
[CmdletExample(
    "$m = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -InitMethod Random; $off = ($m | Disable-LoraAdapter | Measure-LoraPerplexity -Text 'Tom.').Loss; $on = ($m | Enable-LoraAdapter | Measure-LoraPerplexity -Text 'Tom.').Loss; $off, $on",
    "Loss without and with the adapter.")]
public sealed class EnableLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model whose adapters to turn back on.")]
    public LoraModel Model { get; set; } = null!;

    protected override void Process()
    {
        lock (Model.Gate) Model.Loaded.Adapters.Enable();
        WriteObject(Model);
    }
}
