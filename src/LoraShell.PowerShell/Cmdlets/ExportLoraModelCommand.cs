using System.Management.Automation;
using LoraShell.Core.Export;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Export, "LoraModel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DirectoryInfo), typeof(FileInfo))]
[CmdletHelp(
    "Saves a model as a Hugging Face folder (config.json + model.safetensors) or as one GGUF file for llama.cpp, Ollama and LLamaSharp.",
    "Export-LoraModel writes the model's weights. -Format HuggingFace (the default) writes a Hugging Face CausalLM folder in the model's current dtype: config.json and a single model.safetensors with {\"format\": \"pt\"} metadata, plus the tokenizer file it was loaded with; Import-LoraModel and Hugging Face transformers both read it. -Format Gguf (the default when -Path ends in .gguf) writes one GGUF file as llama.cpp's converter would: llama.cpp's architecture (llama for Llama and Mistral, qwen2, qwen3, phi3, gpt2), tensor names and metadata keys, q/k rows in llama.cpp's rope order, Llama 3 rope scaling as rope_freqs, and the tokenizer (SentencePiece or byte-level BPE with its pre-tokenizer) and chat template inside. Matrices are written as -TensorType (F32 by default; F16, BF16, Q8_0, Q4_0), vectors as F32, and a matrix whose rows are not whole 32-blocks falls back to F16 in the quantized types. An Ollama Modelfile (FROM, stop tokens) is written beside it as <name>.Modelfile: `ollama create NAME -f <name>.Modelfile`. What llama.cpp cannot compute (dynamic rope scaling, GPT-2's scale_attn_by_inverse_layer_idx) is refused by name, and what it ignores (Mistral's sliding window) is warned about. Active adapters must be merged first (Merge-LoraWeights); to ship an adapter alone use Save-LoraAdapter -Format Gguf. Files and folders are written to a temporary sibling and renamed when complete, so a failure never leaves half a model; an existing one is replaced only with -Force. Supports -WhatIf and -Confirm.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Export-LoraModel -Path ./out/stories260K-hf -Force
    """,
    "Converts the llama2.c checkpoint into a Hugging Face folder.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Export-LoraModel -Format Gguf -Path ./out/stories260K.gguf -Force
    """,
    "Writes stories260K as a GGUF file (tokenizer inside) and stories260K.Modelfile beside it, for llama.cpp, LLamaSharp or `ollama create stories -f ./out/stories260K.Modelfile`.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin -DType bfloat16 |
        Export-LoraModel -Path ./out/stories260K-bf16 -WhatIf
    """,
    "Shows what would be written, without writing anything.")]
public sealed class ExportLoraModelCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model to save, usually piped from Import-LoraModel.")]
    public LoraModel Model { get; set; } = null!;

    [Alias("OutputPath")]
    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Folder (Hugging Face) or file (GGUF) to create. Relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "HuggingFace (a folder; default) or Gguf (one file for llama.cpp, Ollama and LLamaSharp; the default when -Path ends in .gguf).")]
    public ModelFileFormat Format { get; set; }

    [Parameter(HelpMessage = "GGUF only: the type of the matrices, F32 (default), F16, BF16, Q8_0 or Q4_0. Norms and biases stay F32.")]
    [Alias("OutType")]
    public GgufTensorType TensorType { get; set; }

    [Parameter(HelpMessage = "Replace the folder or file if it already exists.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        string target = ResolveLiteral(Path);
        var format = MyInvocation.BoundParameters.ContainsKey(nameof(Format)) ? Format
            : ExportFormats.LooksLikeGguf(target) ? ModelFileFormat.Gguf : ModelFileFormat.HuggingFace;
        if (format != ModelFileFormat.Gguf && MyInvocation.BoundParameters.ContainsKey(nameof(TensorType)))
            Fail(Core.LoraErrorKind.InvalidArgument, "TensorTypeNeedsGguf", $"-TensorType sets the type of a GGUF file's tensors; a Hugging Face folder is written in the model's dtype ({Model.DType}). Use -Format Gguf, or -DType on Import-LoraModel.", TensorType);
        RefuseExisting(target, Force);
        if (format == ModelFileFormat.Gguf) { ExportGguf(target); return; }
        if (!ShouldProcess(target, $"Write Hugging Face model folder ({Model.Parameters:N0} parameters, {Model.DType}){Replacing(target)}")) return;
        WarnQuantized("a Hugging Face folder");
        DirectoryInfo written;
        lock (Model.Gate) written = Model.Loaded.SaveHuggingFace(target, overwrite: Force);
        WriteItem(written);
    }

    void ExportGguf(string target)
    {
        if (Directory.Exists(target))
            Fail(Core.LoraErrorKind.InvalidArgument, "OutputPathIsFolder", $"'{target}' is a folder; a GGUF export is one file. Give a file path such as {System.IO.Path.Combine(target, "model.gguf")}.", target);
        string modelfile = OllamaModelfile.PathFor(target);
        if (!ShouldProcess(target, $"Write GGUF model file ({Model.Parameters:N0} parameters, {TensorType} matrices) and Ollama Modelfile '{modelfile}'")) return;
        WarnQuantized("GGUF");
        var result = RunWithProgress("Export-LoraModel (GGUF)", (report, cancel) =>
        {
            lock (Model.Gate) return Model.Loaded.SaveGguf(target, TensorType.ToGgmlType(), (tensor, fraction) => report($"Writing {tensor}", fraction), cancel);
        });
        foreach (var warning in result.Warnings) WriteWarning(warning);
        WriteVerbose($"Wrote '{result.File.FullName}': {result.TensorCount} tensors, {result.File.Length:N0} bytes; Ollama: ollama create NAME -f '{result.Modelfile?.FullName}'.");
        WriteItem(result.File);
    }

    void WarnQuantized(string what)
    {
        if (Model.Quantization != "None")
            WriteWarning($"The model is quantized ({Model.Quantization}): its projections are written dequantized, with the rounding of the quantization ({what} has no NF4/int8 format LoraShell writes).");
    }
}
