using System.Management.Automation;

namespace LoraShell.PowerShell;

/// <summary>
/// What Set-, Enable-, Disable- and Remove-LoraAdapter share: the model from the pipeline, and -PassThru
/// (they write nothing otherwise, as first-party Set/Enable/Remove cmdlets do).
/// </summary>
public abstract class AdapterStateCmdlet : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model holding the adapters, usually piped (an adapter from Get-LoraAdapter stands for its model).")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(HelpMessage = "Write the model to the pipeline afterwards (by default nothing is written).")]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Changes the model's adapters (under its lock) once ShouldProcess agrees to <paramref name="action"/>, then honours -PassThru.</summary>
    protected void Change(string action, Action change)
    {
        if (ShouldProcess(Model.Name, action)) lock (Model.Gate) change();
        if (PassThru) WriteObject(Model);
    }
}
