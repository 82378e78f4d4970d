using System.Management.Automation;
using LoraShell.Core.Lora;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Save, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(DirectoryInfo))]
[CmdletHelp(
    "Writes a LoRA adapter as a Hugging Face PEFT folder (adapter_config.json + adapter_model.safetensors).",
    "Save-LoraAdapter writes exactly what PeftModel.save_pretrained writes: adapter_config.json with PEFT's keys (sorted, indent 2, inference_mode true, base_model_name_or_path filled in) and adapter_model.safetensors with keys base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight [out, r], without the adapter name. The folder is written to a temporary sibling and renamed when complete; an existing folder is replaced only with -Force. Without -Name, every adapter is saved the PEFT way: 'default' in -Path and each other adapter in a subfolder named after it. It warns when every lora_B is zero (an untrained adapter) and reports the file size.")]
[CmdletExample(
    """
    Import-LoraModel ./shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Rank 8 -Alpha 16 |
        Save-LoraAdapter -Path ./out/adapter -Force
    """,
    "Saves the adapter; transformers + PEFT can load the folder with PeftModel.from_pretrained.")]
[CmdletExample(
    """
    $m = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter
    $m | Save-LoraAdapter -Path ./out/adapter2 -WhatIf
    """,
    "Shows what would be written without writing anything.")]
public sealed class SaveLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model holding the adapter.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Folder to write. Relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "The adapter to save. Default: all adapters ('default' in -Path, others in subfolders named after them).")]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string? Name { get; set; }

    [Parameter(HelpMessage = "Replace an existing folder.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        string root = ResolveLiteral(Path);
        lock (Model.Gate)
        {
            var set = Model.Loaded.Adapters;
            if (set.Names.Count == 0)
                Fail(Core.LoraErrorKind.InvalidOperation, "NoAdapter", $"Model '{Model.Name}' has no adapter to save; add one with Add-LoraAdapter or Import-LoraAdapter.", Model.Name);
            if (Name is not null && !set.Contains(Name))
                Fail(Core.LoraErrorKind.ObjectNotFound, "AdapterNotFound", $"The model has no adapter named '{Name}'. Adapters: {string.Join(", ", set.Names)}.", Name);
            // PEFT's layout: 'default' (or a lone adapter) in the folder itself, every other adapter in a subfolder named after it.
            var targets = Name is not null
                ? new[] { (Name, "") }
                : set.Names.Select(n => (n, n == "default" || set.Names.Count == 1 ? "" : n)).ToArray();
            RefuseExisting(root, Force);
            string what = string.Join("; ", targets.Select(t =>
            {
                var info = set.Info(t.Item1);
                return $"'{t.Item1}' (r={info.Rank}, {info.ModulePaths.Count} modules, {info.TrainableParameters:N0} parameters){(t.Item2.Length > 0 ? $" in {t.Item2}/" : "")}";
            }));
            if (!ShouldProcess(root, $"Save LoRA adapter(s) {what} in PEFT format")) return;
            foreach (var result in PeftAdapterFormat.SaveAll(set, targets, root, Force, Model.Path))
            {
                foreach (var w in result.Warnings) WriteWarning(w);
                WriteVerbose($"Saved adapter in '{result.Folder.FullName}': {result.TensorCount} tensors, {result.FileBytes:N0} bytes in {PeftAdapterFiles.WeightsFile}.");
                WriteItem(result.Folder);
            }
        }
    }
}
