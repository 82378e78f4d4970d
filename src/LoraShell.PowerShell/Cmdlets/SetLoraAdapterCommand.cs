using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Set, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Chooses which of a model's adapters are active.",
    "Set-LoraAdapter makes the named adapters, and only them, active: their updates are added to the layers' outputs, and the first one's parameters are marked trainable. Other adapters stay in the model, inactive. It writes nothing unless -PassThru is given, when it writes the model, so a pipeline can go on.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name a |
        Add-LoraAdapter -Name b -TargetModules o_proj |
        Set-LoraAdapter -Name a -PassThru |
        Get-LoraAdapter
    """,
    "Two adapters; a is made active again after b was added. -PassThru hands the model on.",
    Output = """
    Name       Rank Alpha Modules   Trainable Trainable% Merged Active Targets
    ----       ---- ----- -------   --------- ---------- ------ ------ -------
    a             8     8      10       8,960     3.2687 False  True   q_proj,v_proj
    b             8     8       5       5,120     1.8678 False  False  o_proj
    """)]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name a |
        Add-LoraAdapter -Name b -TargetModules o_proj |
        Set-LoraAdapter -Name a, b -PassThru |
        Get-LoraAdapter
    """,
    "Both adapters active at once.")]
public sealed class SetLoraAdapterCommand : AdapterStateCmdlet
{
    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Adapter name(s) to make active.")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    protected override void Process()
    {
        Change($"Make adapter(s) {string.Join(", ", Name)} the active ones", () =>
        {
            Model.Loaded.Adapters.SetActive(Name);
            Model.Loaded.Adapters.MarkTrainable(Name[0]);
        });
    }
}
