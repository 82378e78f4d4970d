using System.Management.Automation;
using LoraShell.Core;
using LoraShell.Core.Jobs;
using LoraShell.Core.Lora;
using LoraShell.Core.Memory;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Session;
using LoraShell.Core.Training;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Export, "LoraTrainingJob", SupportsShouldProcess = true)]
[OutputType(typeof(TrainingJob))]
[CmdletHelp(
    "Writes a LoRA training run as a job folder for Hugging Face Accelerate (FSDP or DeepSpeed ZeRO-3) with TRL and PEFT, for runs too big for one machine.",
    "Export-LoraTrainingJob takes the same run Start-LoraTraining takes (the piped model and its active adapter, -DataPath and the training parameters) and writes it out for the Python stack that trains across GPUs and machines: train.py (TRL's SFTTrainer with a PEFT LoraConfig equal to the adapter's settings, stated as literal dicts at the top, and LoraShell's learning-rate schedule step for step), accelerate_config.yaml (FSDP with PEFT's auto-wrap policy, DeepSpeed ZeRO-3, or one GPU), requirements.txt (the stack pinned), data/train.jsonl and data/validation.jsonl (the data split as Start-LoraTraining splits it, in the forms TRL reads: text, prompt/completion, or conversations with the loss on each assistant turn), the chat template, and README.md (how to launch, where each setting went, what differs). The GPU count is Measure-LoraMemory's for this run (bf16, LoRA or QLoRA, -GpuMemoryGB each), or -Gpus. A model imported from a Hugging Face folder is read from there (or from -ModelId, its hub id, on another machine); -IncludeModel writes it into the job. A quantized base (Import-LoraModel -Quantization Nf4) becomes QLoRA with bitsandbytes. Ladder and full fine-tuning, classification data and LoRA+ have no counterpart there and are refused. The adapter the job trains lands in adapter/ as a PEFT folder that Import-LoraAdapter reads. The folder is written beside the target and renamed when complete; an existing one is replaced only with -Force. Supports -WhatIf.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -TargetModules all-linear -Rank 16 -Alpha 32 |
        Export-LoraTrainingJob -DataPath ../shared/data/tinyshakespeare/input.txt -Path ./out/job `
            -ModelId my-org/stories260K-hf -MaxSteps 2000 -BatchSize 16 -SequenceLength 256 -Force |
        Format-Table Method, Gpus, Strategy, TrainRecords, ValidationRecords
    """,
    "A LoRA run written as an Accelerate job folder (train.py, accelerate_config.yaml, requirements.txt, data/, README.md) whose from_pretrained loads my-org/stories260K-hf, the model's Hugging Face copy on the hub; one GPU is enough, so the job runs without sharding: `accelerate launch --config_file accelerate_config.yaml train.py` in ./out/job.",
    Output = """
    Method Gpus  Strategy TrainRecords ValidationRecords
    ------ ----  -------- ------------ -----------------
    LoRA      1 SingleGpu            1                 1
    """)]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin -Quantization Nf4 -DoubleQuant |
        Add-LoraAdapter -TargetModules all-linear |
        Export-LoraTrainingJob -DataPath ../shared/data/tinyshakespeare/input.txt -Path ./out/job-qlora `
            -ModelId my-org/stories260K-hf -Epochs 1 -Gpus 16 -Strategy Fsdp -Force |
        Format-List Method, Gpus, Machines, LaunchCommand
    """,
    "QLoRA (the NF4 base becomes bitsandbytes' 4-bit load) sharded with FSDP over 16 GPUs on two machines of 8; the README in the folder gives the launch line for each machine. Without -Gpus the count is Measure-LoraMemory's for the run and -GpuMemoryGB.",
    Output = """
    Method        : QLoRA
    Gpus          : 16
    Machines      : 2
    LaunchCommand : accelerate launch --config_file accelerate_config.yaml train.py
    """)]
public sealed class ExportLoraTrainingJobCommand : TrainingSettingsCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model (and its active adapter) to train, usually piped from Import-LoraModel or Add-LoraAdapter.")]
    public LoraModel Model { get; set; } = null!;

    [Alias("OutputPath")]
    [Parameter(Mandatory = true, Position = 1, HelpMessage = "The job folder to create.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "What the job's from_pretrained loads: a Hugging Face hub id (meta-llama/Meta-Llama-3-8B) or a folder on the machine that runs it. Default: the folder the model was imported from (or its -NameOrPath).")]
    [ValidateNotNullOrEmpty]
    public string? ModelId { get; set; }

    [Parameter(HelpMessage = "Write the model into the job (model/, a Hugging Face folder with its tokenizer), so the job needs nothing else. Its tokenizer must be one transformers reads (tokenizer.json or tokenizer.model).")]
    public SwitchParameter IncludeModel { get; set; }

    [Parameter(HelpMessage = "How the run spreads: Fsdp (default for several GPUs; PEFT's FSDP settings), DeepSpeedZero3, or SingleGpu (default when one GPU is enough).")]
    public DistributedStrategy? Strategy { get; set; }

    [Parameter(HelpMessage = "GPUs in all (default: the fewest of -GpuMemoryGB that Measure-LoraMemory says the run needs). More than -GpusPerMachine spans machines.")]
    [ValidateRange(1, 65536)]
    public int? Gpus { get; set; }

    [Parameter(HelpMessage = "Memory of each GPU, in GB, for the GPU count (default 80).")]
    [ValidateRange(1.0, 100000.0)]
    public double GpuMemoryGB { get; set; } = 80;

    [Parameter(HelpMessage = "GPUs in one machine (default 8).")]
    [ValidateRange(1, 1024)]
    public int GpusPerMachine { get; set; } = 8;

    [Parameter(HelpMessage = "Replace an existing job folder.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        var loaded = Model.Loaded;
        var (adapterName, lora) = AdapterConfig(loaded);
        var training = SharedOptions() with { Method = TrainingMethod.Lora };
        string folder = ResolveLiteral(Path);
        var quantization = loaded.Model.Format.Quantization;
        bool doubleQuant = loaded.Model.Format.DoubleQuant;
        if (ModelId is null && IncludeModel && loaded.Model.Format.Quantization != BaseQuantization.None)
            WriteWarning($"The model is {quantization}-quantized here; model/ holds its dequantized weights, which bitsandbytes quantizes again when the job loads them (not bit for bit LoraShell's {quantization} codes).");
        bool carry = IncludeModel || (ModelId is null && loaded.Format != ModelLoader.HuggingFaceFormat);
        if (carry) CheckTransformersCanRead(loaded);
        string modelName = ModelId ?? loaded.NameOrPath;
        if (!carry && ModelId is null)
            WriteVerbose($"The job loads the model from '{modelName}'; on another machine give -ModelId (its hub id) or -IncludeModel.");

        var targets = adapterName is null ? lora.TargetModules!.ToArray() : loaded.Adapters.Info(adapterName).TargetModules.ToArray();
        var (gpus, perGpu) = GpuCount(loaded, lora, targets, training, quantization, doubleQuant);
        var strategy = Strategy ?? (gpus > 1 ? DistributedStrategy.Fsdp : DistributedStrategy.SingleGpu);
        var options = new TrainingJobOptions
        {
            ModelNameOrPath = modelName, Lora = lora, Training = training, Quantization = quantization, DoubleQuant = doubleQuant,
            Strategy = strategy, Gpus = gpus, GpusPerMachine = GpusPerMachine, ChatTemplate = loaded.Tokenizer?.Chat?.Template.Source,
        };
        options.Validate();
        if (!Force) Core.IO.AtomicFile.RefuseExisting(folder, overwrite: false);
        string method = quantization switch { BaseQuantization.Nf4 => "QLoRA", BaseQuantization.Int8 => "LoRA (8-bit base)", _ => "LoRA" } + (lora.UseDora ? " + DoRA" : "");
        if (!ShouldProcess(folder, $"Write a {method} training job for {AccelerateConfig.Describe(options)}{(carry ? " with the model inside" : "")}")) return;

        Action<string>? writeModel = carry ? dir => HuggingFaceWriter.WriteInto(loaded.Model, dir, loaded.TokenizerFiles) : null;
        TrainingJobResult result;
        lock (Model.Gate) result = TrainingJobWriter.Write(options, folder, Force, writeModel);
        foreach (var w in result.Data.Warnings) WriteWarning(w);
        if (gpus > 1) WriteVerbose($"Each step of the job sees {gpus} x {training.BatchSize * training.GradientAccumulationSteps} sequences (data parallel over {gpus} GPUs); a LoraShell step sees {training.BatchSize * training.GradientAccumulationSteps}.");
        WriteObject(new TrainingJob(result, options, method, perGpu));
    }

    /// <summary>The adapter the job trains: -AdapterName, else the active one, else the one Start-LoraTraining would add.</summary>
    (string? Name, LoraConfig Config) AdapterConfig(LoadedModel loaded)
    {
        string? name = AdapterName ?? loaded.Adapters.ActiveNames.FirstOrDefault();
        if (name is null)
        {
            WriteVerbose("The model has no active adapter: the job trains the one Add-LoraAdapter adds without arguments (PEFT's defaults: r 8, alpha 8, q_proj and v_proj).");
            return (null, new LoraConfig());
        }
        if (loaded.Adapters.MergedNames.Contains(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterMerged",
                $"Adapter '{name}' is merged into the weights; a job that trains it again from the base would start from the merged model. Unmerge it first (Merge-LoraWeights -Unmerge) or export with the base as it was imported.", name);
        return (name, loaded.Adapters.ConfigOf(name));
    }

    /// <summary>The model travels as a Hugging Face folder only with a tokenizer transformers reads.</summary>
    void CheckTransformersCanRead(LoadedModel loaded)
    {
        var names = loaded.TokenizerFiles.Select(System.IO.Path.GetFileName).ToList();
        if (names.Any(n => n is "tokenizer.json" or "tokenizer.model")) return;
        string tokenizer = names.Count > 0 ? string.Join(", ", names) : "a tokenizer read from the model file";
        throw LoraShellException.InvalidArgument("ModelNotReadableByTransformers",
            $"The job needs a model transformers can load. '{loaded.SourcePath}' is a {loaded.Format} model with {tokenizer}, which transformers cannot read. Give -ModelId: the Hugging Face hub id (or folder) of this model.", loaded.SourcePath);
    }

    (int Gpus, double? PerGpuGB) GpuCount(LoadedModel loaded, LoraConfig lora, string[] targets, TrainingOptions training, BaseQuantization quantization, bool doubleQuant)
    {
        if (Gpus is int given) return (given, null);
        var estimate = MemoryEstimator.Estimate(loaded.Model.Config, new MemoryEstimateOptions
        {
            Method = TrainingMethod.Lora, Precision = TrainingPrecision.Bf16Mixed, Quantization = quantization, DoubleQuant = doubleQuant,
            BatchSize = training.BatchSize, SequenceLength = training.SequenceLength, ActivationCheckpointing = training.GradientCheckpointing,
            FusedCrossEntropy = true, LoraRank = lora.R, LoraTargets = targets,
            UseDora = lora.UseDora, ModulesToSave = lora.ModulesToSave, GpuMemoryGB = GpuMemoryGB,
        }, loaded.Name);
        if (estimate.Gpus is not int gpus)
            throw LoraShellException.InvalidArgument("ActivationsExceedOneGpu",
                $"One micro-batch of {training.BatchSize} x {training.SequenceLength} tokens needs {estimate.ActivationBytes / MemoryEstimate.GB:N1} GB of activations, more than one {GpuMemoryGB} GB GPU holds. Lower -BatchSize or -SequenceLength, add -GradientCheckpointing, or give -Gpus.", GpuMemoryGB);
        WriteVerbose($"Measure-LoraMemory: {estimate.TotalBytes / MemoryEstimate.GB:N1} GB in all (bf16, {lora.R}-rank LoRA{(quantization == BaseQuantization.None ? "" : $", {quantization} base")}), {gpus} GPU(s) of {GpuMemoryGB} GB at {estimate.PerGpuGB:N1} GB each.");
        return (gpus, estimate.PerGpuGB);
    }
}
