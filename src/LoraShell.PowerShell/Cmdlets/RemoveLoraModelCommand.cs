using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Remove, "LoraModel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(void))]
[CmdletHelp(
    "Frees a loaded model's memory now.",
    "Remove-LoraModel disposes the model's native tensors (weights, adapters, side network) at once. .NET's garbage collector does not see their size, so a model that is merely no longer referenced can hold gigabytes until some later collection; scripts that load several models in turn, and notebooks, free each one when done. Afterwards the LoraModel object says Removed = True and every cmdlet refuses it with the error id ModelRemoved. Removing a model twice does nothing. Nothing on disk is touched.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin
    $m | Measure-LoraPerplexity -Text 'Once upon a time'
    $m | Remove-LoraModel
    """,
    "Scores a text, then frees the model's memory.")]
[CmdletExample(
    """
    foreach ($rank in 4, 8) {
        $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin | Add-LoraAdapter -Rank $rank
        $m | Get-LoraAdapter
        $m | Remove-LoraModel
    }
    """,
    "Tries two adapter ranks, freeing each model before the next is loaded, so memory does not pile up.")]
public sealed class RemoveLoraModelCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, Position = 0, HelpMessage = "The model(s) to free.")]
    public LoraModel[] Model { get; set; } = Array.Empty<LoraModel>();

    protected override void Process()
    {
        foreach (var model in Model)
        {
            if (model.Removed) { WriteVerbose($"Model '{model.Name}' was removed already."); continue; }
            if (!ShouldProcess(model.Name, "Free the model's memory (weights, adapters, side network)")) continue;
            lock (model.Gate) model.Remove();
        }
    }
}
