using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Export, "LoraModel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DirectoryInfo))]
[CmdletHelp(
    "Saves a model as a Hugging Face folder (config.json + model.safetensors).",
    "Export-LoraModel writes the model's weights, in its current dtype, as a Hugging Face CausalLM folder: config.json and a single model.safetensors with {\"format\": \"pt\"} metadata, plus the tokenizer file it was loaded with. Import-LoraModel and Hugging Face transformers both read the result. The folder is written to a temporary sibling and renamed when complete, so a failure never leaves half a model; an existing folder is replaced only with -Force. Supports -WhatIf and -Confirm.")]
[CmdletExample(
    """
    Import-LoraModel ./shared/models/stories260K/stories260K.bin |
        Export-LoraModel -Path ./out/stories260K-hf -Force
    """,
    "Converts the llama2.c checkpoint into a Hugging Face folder.")]
[CmdletExample(
    """
    Import-LoraModel ./shared/models/stories260K/stories260K.bin -DType bfloat16 |
        Export-LoraModel -Path ./out/stories260K-bf16 -WhatIf
    """,
    "Shows what would be written, without writing anything.")]
public sealed class ExportLoraModelCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model to save, usually piped from Import-LoraModel.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Folder to create. Relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "Replace the folder if it already exists.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        string target = ResolveLiteral(Path);
        RefuseExisting(target, Force);
        if (!ShouldProcess(target, $"Write Hugging Face model folder ({Model.Parameters:N0} parameters, {Model.DType})")) return;
        if (Model.Quantization != "None")
            WriteWarning($"The model is quantized ({Model.Quantization}): its projections are written dequantized to {Model.DType}, with the rounding of the quantization (a Hugging Face folder has no NF4/int8 format LoraShell writes).");
        DirectoryInfo written;
        lock (Model.Gate) written = Model.Loaded.SaveHuggingFace(target, overwrite: Force);
        WriteItem(written);
    }
}
