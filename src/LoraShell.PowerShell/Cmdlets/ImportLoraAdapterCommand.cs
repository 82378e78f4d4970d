using System.Management.Automation;
using LoraShell.Core.Lora;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Import, "LoraAdapter", DefaultParameterSetName = "Path")]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Loads a saved PEFT LoRA adapter folder into a model.",
    "Import-LoraAdapter reads adapter_config.json and adapter_model.safetensors as Hugging Face PEFT writes them, injects the adapter into the modules its config targets and copies the factors in. Every key and shape is checked against the model before anything changes; a mismatch lists the missing, unexpected and mis-shaped keys and names the likely cause (another base model, another rank, keys with an adapter name). Unknown config keys are kept and ignored with a warning. If -Path holds no adapter_config.json but -Path/<Name> does (PEFT's layout for non-default adapters), that folder is used. The imported adapter becomes active. The model is passed through.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random -Seed 1
    $m | Save-LoraAdapter ./out/a -Force | Out-Null
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Import-LoraAdapter -Path ./out/a -Name story |
        Get-LoraAdapter
    """,
    "Saves an adapter in PEFT format and loads it into a fresh copy of the model under another name.",
    Output = """
    Name       Rank Alpha Modules   Trainable Trainable% Merged Active Targets
    ----       ---- ----- -------   --------- ---------- ------ ------ -------
    story         8     8      10       8,960     3.3310 False  True   q_proj,v_proj
    """)]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random
    $m | Save-LoraAdapter ./out/b -Force | Out-Null
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Import-LoraAdapter ./out/b -Name shakespeare |
        Merge-LoraWeights -Name shakespeare
    """,
    "Imports an adapter under another name and merges it into the base weights.")]
public sealed class ImportLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The base model to load the adapter into.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Path", HelpMessage = "The adapter folder (wildcards allowed if they match one folder).")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "LiteralPath", HelpMessage = "The adapter folder, taken literally.")]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string LiteralPath { get; set; } = "";

    [Parameter(HelpMessage = "Name to give the adapter in the model (default 'default').")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "default";

    protected override void Process()
    {
        string folder = ParameterSetName == "LiteralPath" ? ResolveLiteral(LiteralPath) : ResolveSingle(Path, nameof(Path));
        var warnings = new List<string>();
        lock (Model.Gate)
        {
            PeftAdapterFormat.Load(Model.Loaded.Adapters, folder, Name, warnings.Add, Model.Path);
            Model.Loaded.Adapters.MarkTrainable(Name);
        }
        foreach (var w in warnings) WriteWarning(w);
        var info = Model.Loaded.Adapters.Info(Name);
        WriteVerbose($"Loaded adapter '{Name}' from '{folder}': r {info.Rank}, alpha {info.Alpha:G}, {info.ModulePaths.Count} modules ({string.Join(", ", info.TargetModules)}), {info.TrainableParameters:N0} parameters.");
        WriteObject(Model);
    }
}
