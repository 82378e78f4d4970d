using System.Management.Automation;
using LoraShell.Core.Export;
using LoraShell.Core.Lora;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Save, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(DirectoryInfo), typeof(FileInfo))]
[CmdletHelp(
    "Writes a LoRA adapter as a Hugging Face PEFT folder (adapter_config.json + adapter_model.safetensors).",
    "Save-LoraAdapter writes exactly what PeftModel.save_pretrained writes: adapter_config.json with PEFT's keys (sorted, indent 2, inference_mode true, base_model_name_or_path filled in) and adapter_model.safetensors with keys base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight [out, r], without the adapter name. The folder is written to a temporary sibling and renamed when complete; an existing folder is replaced only with -Force. Without -Name, every adapter is saved the PEFT way: 'default' in -Path and each other adapter in a subfolder named after it. It warns when every lora_B is zero (an untrained adapter) and reports the file size. -Format Gguf (the default when -Path ends in .gguf) writes one adapter as a GGUF LoRA file for llama.cpp's --lora, LLamaSharp and Ollama's ADAPTER: general.type adapter, adapter.lora.alpha as FLOAT32, tensors <llama.cpp tensor>.lora_a / .lora_b in PEFT's orientation (B's q/k rows in llama.cpp's rope order for Llama and Mistral); llama.cpp scales each pair by alpha / r, so a module scaled otherwise (rsLoRA, alpha_pattern) carries the difference in its B. It applies to the base model exported with Export-LoraModel -Format Gguf; -BaseModelPath names that file and writes an Ollama Modelfile (FROM base, ADAPTER adapter) beside the adapter. What a GGUF adapter cannot carry (DoRA, trained biases, modules_to_save) is refused by name.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Rank 8 -Alpha 16 |
        Save-LoraAdapter -Path ./out/adapter -Force
    """,
    "Saves the adapter; transformers + PEFT can load the folder with PeftModel.from_pretrained.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin | Add-LoraAdapter
    $m | Save-LoraAdapter -Path ./out/adapter2 -WhatIf
    """,
    "Shows what would be written without writing anything.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin
    $m | Export-LoraModel -Path ./out/stories.gguf -Force
    $m | Add-LoraAdapter -Rank 8 -Alpha 16 -TargetModules all-linear |
        Start-LoraTraining -DataPath ../shared/data/tinyshakespeare/input.txt -MaxSteps 20 `
            -BatchSize 4 -SequenceLength 64 -MaxEvalWindows 8 | Out-Null
    $m | Save-LoraAdapter -Path ./out/shakespeare.gguf -BaseModelPath ./out/stories.gguf -Force
    """,
    "Exports the base model and a trained adapter as GGUF files, with shakespeare.Modelfile for `ollama create`; llama.cpp applies it with --lora.")]
public sealed class SaveLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model holding the adapter.")]
    public LoraModel Model { get; set; } = null!;

    [Alias("OutputPath")]
    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Folder to write. Relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "The adapter to save. Default: all adapters ('default' in -Path, others in subfolders named after them).")]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string? Name { get; set; }

    [Parameter(HelpMessage = "Replace an existing folder or file.")]
    public SwitchParameter Force { get; set; }

    [Parameter(HelpMessage = "Peft (a folder; default) or Gguf (one GGUF LoRA file for llama.cpp and Ollama; the default when -Path ends in .gguf).")]
    public AdapterFileFormat Format { get; set; }

    [Parameter(HelpMessage = "GGUF only: the base model's GGUF file (from Export-LoraModel -Format Gguf). An Ollama Modelfile with FROM it and ADAPTER this file is written beside the adapter.")]
    public string? BaseModelPath { get; set; }

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
            var format = MyInvocation.BoundParameters.ContainsKey(nameof(Format)) ? Format
                : ExportFormats.LooksLikeGguf(root) ? AdapterFileFormat.Gguf : AdapterFileFormat.Peft;
            if (format == AdapterFileFormat.Gguf) { SaveGguf(set, root); return; }
            if (BaseModelPath is not null)
                Fail(Core.LoraErrorKind.InvalidArgument, "BaseModelPathNeedsGguf", "-BaseModelPath names the base GGUF for an Ollama Modelfile; it applies with -Format Gguf only (a PEFT folder records its base in adapter_config.json).", BaseModelPath);
            RefuseExisting(root, Force);
            string what = string.Join("; ", targets.Select(t =>
            {
                var info = set.Info(t.Item1);
                return $"'{t.Item1}' (r={info.Rank}, {info.ModulePaths.Count} modules, {info.TrainableParameters:N0} parameters){(t.Item2.Length > 0 ? $" in {t.Item2}/" : "")}";
            }));
            var writes = new[] { PeftAdapterFiles.ConfigFile, PeftAdapterFiles.WeightsFile }.Concat(targets.Select(t => t.Item2).Where(s => s.Length > 0)).ToArray();
            if (!ShouldProcess(root, $"Save LoRA adapter(s) {what} in PEFT format{Replacing(root, writes)}")) return;
            foreach (var result in PeftAdapterFormat.SaveAll(set, targets, root, Force, Model.Loaded.NameOrPath))
            {
                foreach (var w in result.Warnings) WriteWarning(w);
                WriteVerbose($"Saved adapter in '{result.Folder.FullName}': {result.TensorCount} tensors, {result.FileBytes:N0} bytes in {PeftAdapterFiles.WeightsFile}.");
                WriteItem(result.Folder);
            }
        }
    }

    void SaveGguf(LoraAdapterSet set, string file)
    {
        string name = Name ?? (set.Names.Count == 1 ? set.Names[0]
            : throw new Core.LoraShellException(Core.LoraErrorKind.InvalidArgument, "AdapterNameRequired",
                $"A GGUF adapter file holds one adapter and the model has {set.Names.Count} ({string.Join(", ", set.Names)}); choose one with -Name.", file));
        if (Directory.Exists(file))
            Fail(Core.LoraErrorKind.InvalidArgument, "OutputPathIsFolder", $"'{file}' is a folder; a GGUF adapter is one file. Give a file path such as {System.IO.Path.Combine(file, name + ".gguf")}.", file);
        string? baseModel = BaseModelPath is null ? null : ResolveLiteral(BaseModelPath);
        if (baseModel is not null && !File.Exists(baseModel))
            Fail(Core.LoraErrorKind.ObjectNotFound, "BaseModelNotFound", $"-BaseModelPath '{baseModel}' does not exist; export the base first with Export-LoraModel -Format Gguf.", baseModel);
        RefuseExisting(file, Force);
        var info = set.Info(name);
        if (!ShouldProcess(file, $"Save LoRA adapter '{name}' (r={info.Rank}, {info.ModulePaths.Count} modules) as a GGUF LoRA file" + (baseModel is null ? "" : $" and an Ollama Modelfile for '{baseModel}'"))) return;
        var result = GgufAdapterExport.Save(set, name, file, Cancellation);
        foreach (var w in result.Warnings) WriteWarning(w);
        if (baseModel is not null)
        {
            string modelfile = OllamaModelfile.PathFor(file);
            Core.IO.AtomicFile.WriteAllText(modelfile, OllamaModelfile.Render(modelfile, baseModel, file, OllamaModelfile.StopStrings(Model.Loaded.Tokenizer)));
            WriteVerbose($"Wrote the Ollama Modelfile '{modelfile}': ollama create NAME -f '{modelfile}'.");
        }
        WriteVerbose($"Saved adapter '{name}' in '{result.File.FullName}': {result.TensorCount} tensors, {result.File.Length:N0} bytes.");
        WriteItem(result.File);
    }
}
