using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsLifecycle.Disable, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Turns all adapters off: the model computes its base output only.",
    "Disable-LoraAdapter makes every LoRA layer return the base layer's output exactly; merged adapters are unmerged first, as PEFT's disable does. Enable-LoraAdapter turns the active adapters back on. It writes nothing unless -PassThru is given, when it writes the model.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random
    ($m | Disable-LoraAdapter -PassThru | Measure-LoraPerplexity `
        -Text 'Tom had a ball.').Loss
    """,
    "The base model's loss, with the adapter still loaded but off.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin | Add-LoraAdapter
    $m | Disable-LoraAdapter -PassThru | Enable-LoraAdapter -PassThru | Get-LoraAdapter
    """,
    "Off and on again.")]
public sealed class DisableLoraAdapterCommand : AdapterStateCmdlet
{
    protected override void Process()
    {
        Change("Turn the adapters off (merged ones are unmerged first)", Model.Loaded.Adapters.Disable);
    }
}

[Cmdlet(VerbsLifecycle.Enable, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Turns a model's active adapters back on after Disable-LoraAdapter.",
    "Enable-LoraAdapter undoes Disable-LoraAdapter: the active adapters' updates are added to the layers' outputs again. It writes nothing unless -PassThru is given, when it writes the model.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin | Add-LoraAdapter
    $m | Disable-LoraAdapter -PassThru | Enable-LoraAdapter -PassThru | Get-LoraAdapter
    """,
    "The adapter is active again.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random -Seed 1
    $off = ($m | Disable-LoraAdapter -PassThru | Measure-LoraPerplexity `
        -Text 'Tom had a ball.').Loss
    $on = ($m | Enable-LoraAdapter -PassThru | Measure-LoraPerplexity `
        -Text 'Tom had a ball.').Loss
    '{0:N4} without the adapter, {1:N4} with it' -f $off, $on
    """,
    "Loss without and with a randomly initialised adapter (B is not zero, so it changes the model).",
    Output = """
    2.3282 without the adapter, 4.0590 with it
    """)]
public sealed class EnableLoraAdapterCommand : AdapterStateCmdlet
{
    protected override void Process()
    {
        Change("Turn the active adapters back on", Model.Loaded.Adapters.Enable);
    }
}
