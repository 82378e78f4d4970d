using System.Management.Automation;
using LoraShell.Core.Models;
using LoraShell.Core.Session;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Import, "LoraModel", DefaultParameterSetName = PathSet)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Loads a base model: a Hugging Face folder (Llama 2/3, Mistral, Qwen2, Qwen3, Phi-3, GPT-2), a GGUF file (llama.cpp's, Ollama's) or a llama2.c checkpoint.",
    "Import-LoraModel reads a Hugging Face folder (config.json with model.safetensors or a sharded model.safetensors.index.json, in float32, float16 or bfloat16) of any family LoraShell implements - config.json's model_type llama (with rope_scaling llama3, linear or dynamic), mistral (sliding window), qwen2, qwen3, phi3 or gpt2 - or a llama2.c .bin checkpoint (legacy or version-1 header, converted to Llama), or a GGUF file - recognised by its content, so the sha256-... blobs in Ollama's model store load too - of llama.cpp's llama (Llama, Mistral, TinyLlama), qwen2, qwen3, phi3 or gpt2 architecture in F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the K-quants Q2_K to Q6_K (Ollama's default Q4_K_M is Q4_K and Q6_K), IQ4_NL or IQ4_XS, each tensor dequantized as it is read into -DType or straight into -Quantization; a GGUF's tokenizer and chat template come from its metadata. Every family keeps Hugging Face's module names and layout, so LoRA adapters address the same modules as in PEFT (q_proj, qkv_proj, c_attn, ...) and exports load in transformers. The config is checked against the checkpoint's tensor shapes before anything is allocated. The tokenizer beside the model is loaded too (tokenizer.json with its tokenizer_config.json and chat template, tokenizer.model, or a llama2.c tok*.bin), unless -TokenizerPath names another. Pickle checkpoints (.pt, pytorch_model.bin) are never loaded. -Quantization Nf4 or Int8 stores every projection of the decoder quantized, as transformers' bitsandbytes path does (embeddings, norms and the output head stay in -DType): NF4 exactly as bitsandbytes defines it (blocks of 64, one absmax each, about 0.56 byte per weight; -DoubleQuant quantizes the absmax values too), Int8 with one scale per output row (about 1 byte per weight). Weights are quantized as they are read and dequantized one layer at a time, so the model never exists dense. A quantized base trains with -Method Lora (QLoRA) or Ladder; merging an adapter into it makes the merged layers dense (dequantized base plus delta), and Export-LoraModel writes dequantized weights. With -DType bfloat16 a bfloat16 checkpoint is read straight into bfloat16, never through float32. The result is a LoraShell.LoraModel that the other cmdlets take from the pipeline.")]
[CmdletExample(
    "Import-LoraModel -Path ../shared/models/stories260K/stories260K.bin",
    "Loads Karpathy's 260K-parameter TinyStories model (llama2.c format) with its tokenizer from the same folder.",
    Output = """
    Name             Family     Parameters Device DType    Quant       MiB Adapters
    ----             ------     ---------- ------ -----    -----       --- --------
    stories260K.bin  llama         260,032 cpu    float32  None        1.0
    """)]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin -DType bfloat16 |
        Invoke-LoraGeneration -Prompt 'Once upon a time' -Temperature 0 -MaxTokens 40
    """,
    "Loads the model in bfloat16 and continues a prompt greedily.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin -Quantization Nf4 `
        -DoubleQuant |
        Add-LoraAdapter -TargetModules all-linear -Rank 8 |
        Start-LoraTraining -DataPath ../shared/data/tinyshakespeare/input.txt -MaxSteps 20 `
            -BatchSize 8 -SequenceLength 64
    """,
    "QLoRA: a 4-bit NF4 base (double-quantized statistics) with a LoRA adapter trained on top; the adapter saved is an ordinary PEFT adapter.")]
public sealed class ImportLoraModelCommand : LoraCmdlet
{
    const string PathSet = "Path";
    const string LiteralPathSet = "LiteralPath";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true,
        HelpMessage = "A llama2.c .bin checkpoint, a GGUF file or a Hugging Face model folder. Wildcards are allowed if they match exactly one item; relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true,
        HelpMessage = "Like -Path, but taken literally: no wildcard expansion. Binds from the pipeline by property name (PSPath or FullName), so a folder written by Export-LoraModel or Merge-LoraWeights -OutputPath pipes straight in.")]
    [Alias("PSPath", "LP", "FullName")]
    [ValidateNotNullOrEmpty]
    public string LiteralPath { get; set; } = "";

    [Parameter(HelpMessage = "Tokenizer to use instead of the one beside the model: a Hugging Face tokenizer.json (or the folder holding it), a SentencePiece tokenizer.model or a llama2.c tok*.bin file.")]
    public string? TokenizerPath { get; set; }

    [Parameter(HelpMessage = "A side-network folder written by Start-LoraTraining -Method Ladder (side_network.json + side_network.safetensors) to attach to the model; it must have been trained on this backbone.")]
    public string? SideNetworkPath { get; set; }

    [Parameter(HelpMessage = "Device to hold the model: cpu (default), cuda or cuda:N. Tab completion lists the devices present.")]
    [ArgumentCompleter(typeof(DeviceCompleter))]
    public string Device { get; set; } = "cpu";

    [Parameter(HelpMessage = "Weight and compute dtype: float32 (default), bfloat16 or float16. Weights stored in another dtype are converted on load.")]
    public ModelDType DType { get; set; } = ModelDType.Float32;

    [Parameter(HelpMessage = "Store the decoder's projection weights quantized: None (default), Nf4 (4-bit NormalFloat, QLoRA's base) or Int8 (one scale per row). Embeddings, norms and the output head stay in -DType.")]
    public Core.Models.Quantization.BaseQuantization Quantization { get; set; }

    [Parameter(HelpMessage = "With -Quantization Nf4, quantize the per-block absmax values to 8 bits as well (bitsandbytes' double quantization): about 0.4 bit less per weight.")]
    public SwitchParameter DoubleQuant { get; set; }

    // Each path is an item: a file that is not a model is reported and the next one loaded (as Get-Item does).
    protected override bool ErrorsArePerItem => true;

    protected override void Process()
    {
        string path = ParameterSetName == LiteralPathSet ? ResolveLiteral(LiteralPath) : ResolveSingle(Path, nameof(Path));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var loaded = LoadedModel.Load(new ModelLoadOptions
        {
            Path = path,
            NameOrPath = ParameterSetName == LiteralPathSet ? LiteralPath : Path,
            TokenizerPath = TokenizerPath is null ? null : ResolveLiteral(TokenizerPath),
            Device = Device,
            DType = DType,
            Quantization = Quantization,
            DoubleQuant = DoubleQuant,
        });
        if (SideNetworkPath is not null)
        {
            try { loaded.AttachSideNetwork(ResolveLiteral(SideNetworkPath)); }
            catch { loaded.Dispose(); throw; }
        }
        foreach (var warning in loaded.LoadWarnings) WriteWarning(warning);
        if (loaded.Tokenizer is null)
            WriteWarning($"No tokenizer was found beside '{path}'; text cmdlets need one. Pass -TokenizerPath.");
        var model = new LoraModel(loaded);
        WriteVerbose($"Loaded '{path}' ({model.Format}) in {clock.Elapsed.TotalSeconds:N1} s: {model.Family}, {model.Parameters:N0} parameters, " +
            $"{model.Layers} layers x {model.HiddenSize}, {model.DType} on {model.Device}; tokenizer: {model.Tokenizer ?? "none"}" +
            (model.SideNetwork is null ? "." : $"; side network: {model.SideNetwork}."));
        WriteObject(model);
    }
}
