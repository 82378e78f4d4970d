using LoraShell.Core.Lora;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Training;

namespace LoraShell.Core.Jobs;

/// <summary>How the exported job spreads over GPUs.</summary>
public enum DistributedStrategy
{
    /// <summary>One GPU, no sharding (Accelerate's distributed_type NO).</summary>
    SingleGpu,
    /// <summary>PyTorch FSDP (full shard) with PEFT's auto-wrap policy, trainable and frozen weights wrapped apart.</summary>
    Fsdp,
    /// <summary>DeepSpeed ZeRO stage 3 (parameters, gradients and optimizer states sharded).</summary>
    DeepSpeedZero3,
}

/// <summary>
/// Everything an exported training job states: the model, the adapter's PEFT settings, the training
/// settings of a <c>Start-LoraTraining</c> run, how the base is quantized, and how the run is spread.
/// </summary>
public sealed record TrainingJobOptions
{
    /// <summary>What <c>from_pretrained</c> loads: a hub id or a folder path on the machine that runs the job ("model" when the job carries its own copy).</summary>
    public required string ModelNameOrPath { get; init; }
    /// <summary>The adapter to train, as PEFT's LoraConfig states it.</summary>
    public required LoraConfig Lora { get; init; }
    /// <summary>The same settings a <c>Start-LoraTraining</c> run takes; only those with a TRL counterpart are used (see <see cref="Validate"/>).</summary>
    public required TrainingOptions Training { get; init; }
    /// <summary>How the frozen base is stored: None (bf16), Nf4 (QLoRA, bitsandbytes 4-bit) or Int8 (bitsandbytes LLM.int8()).</summary>
    public BaseQuantization Quantization { get; init; }
    public bool DoubleQuant { get; init; }
    public DistributedStrategy Strategy { get; init; } = DistributedStrategy.Fsdp;
    /// <summary>GPUs in all; with more than <see cref="GpusPerMachine"/> the job spans machines.</summary>
    public int Gpus { get; init; } = 1;
    public int GpusPerMachine { get; init; } = 8;
    /// <summary>The chat template the data was meant for (the model's, as LoraShell renders it); written beside the script and set on the tokenizer.</summary>
    public string? ChatTemplate { get; init; }

    public int Machines => (Gpus + GpusPerMachine - 1) / GpusPerMachine;

    /// <summary>Refuses what the exported job cannot reproduce, each with what to do instead.</summary>
    public void Validate()
    {
        static void Bad(string id, string message, object? value = null) => throw LoraShellException.InvalidArgument(id, message, value);
        var t = Training;
        if (t.Method != TrainingMethod.Lora)
            Bad("JobMethodNotSupported", $"An exported job trains a LoRA adapter with PEFT (LoRA, QLoRA, DoRA); -Method {t.Method} has no TRL counterpart. Train it with Start-LoraTraining.", t.Method);
        if (t.IsClassification)
            Bad("JobTaskNotSupported", "An exported job trains a language model with TRL's SFTTrainer; classification data (.tsv sentence<TAB>label, a head on the last token) has no counterpart there. Write the data as {\"prompt\", \"completion\"} JSONL to train the label as text.", t.DataPaths.FirstOrDefault());
        if (t.LoraPlusRatio is not null)
            Bad("JobLoraPlusNotSupported", "-LoraPlusRatio needs PEFT's create_loraplus_optimizer, which an FSDP or ZeRO-3 job cannot take (the optimizer must be built after sharding); leave it out of the export.", t.LoraPlusRatio);
        if (Gpus < 1) Bad("InvalidGpuCount", $"The job needs at least one GPU (got {Gpus}).", Gpus);
        if (GpusPerMachine < 1) Bad("InvalidGpuCount", $"GPUs per machine must be at least 1 (got {GpusPerMachine}).", GpusPerMachine);
        if (Strategy == DistributedStrategy.SingleGpu && Gpus > 1)
            Bad("SingleGpuStrategyWithSeveralGpus", $"-Strategy SingleGpu runs on one GPU, but {Gpus} were asked for; use -Strategy Fsdp or DeepSpeedZero3 to shard over them.", Gpus);
        if (Quantization == BaseQuantization.Int8 && Strategy != DistributedStrategy.SingleGpu)
            Bad("Int8CannotShard", $"bitsandbytes 8-bit weights cannot be sharded by {Strategy}; QLoRA over several GPUs needs a 4-bit base (Import-LoraModel -Quantization Nf4), or use -Strategy SingleGpu.", Quantization);
        if (Quantization == BaseQuantization.Int8 && DoubleQuant)
            Bad("DoubleQuantNeedsNf4", "Double quantization applies to a 4-bit (NF4) base only.", DoubleQuant);
        Lora.Validate();
        // Checkpoints of a job go to its own output/ folder, so -CheckpointEvery needs no -OutputPath here.
        (t with { OutputPath = TrainingJobScript.OutputFolder }).Validate();
    }
}
