using System.Globalization;
using System.Text;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Training;

namespace LoraShell.Core.Jobs;

/// <summary>The job folder's README.md: how to run it, where each LoraShell setting went, and what differs.</summary>
public static class TrainingJobReadme
{
    public const string FileName = "README.md";

    /// <summary>A number as the script states it (invariant culture: "1e-08", "0.001").</summary>
    static string N(double d) => PythonLiteral.Number(d) is var s && s.EndsWith(".0", StringComparison.Ordinal) ? s[..^2] : PythonLiteral.Number(d);

    static string Count(int n, string noun) => string.Create(CultureInfo.InvariantCulture, $"{n:N0} {noun}{(n == 1 ? "" : "s")}");

    public static string Render(TrainingJobOptions o, JobDataSummary data, string modelNameOrPath, bool carriesModel)
    {
        var t = o.Training;
        int perStep = t.BatchSize * t.GradientAccumulationSteps;
        var b = new StringBuilder();
        b.Append("# LoraShell training job\n\n");
        b.Append($"LoRA{(o.Quantization == BaseQuantization.None ? "" : $" over a {(o.Quantization == BaseQuantization.Nf4 ? "4-bit NF4 (QLoRA)" : "8-bit")} base")}{(o.Lora.UseDora ? " with DoRA" : "")} of `{modelNameOrPath}`{(carriesModel ? " (the copy in model/)" : "")}, ");
        b.Append($"written by `Export-LoraTrainingJob` for {AccelerateConfig.Describe(o)}: TRL's `SFTTrainer` with a PEFT `LoraConfig` under Accelerate.\n\n");
        b.Append("```bash\npip install -r requirements.txt\n");
        if (o.Machines > 1)
        {
            b.Append($"# on each machine i = 0 .. {o.Machines - 1}:\n");
            b.Append($"accelerate launch --config_file {AccelerateConfig.FileName} --machine_rank $i --main_process_ip <machine 0> --main_process_port 29500 {TrainingJobScript.FileName}\n");
        }
        else b.Append($"accelerate launch --config_file {AccelerateConfig.FileName} {TrainingJobScript.FileName}\n");
        b.Append("```\n\n");
        b.Append($"The adapter lands in `{TrainingJobScript.AdapterFolder}/` as a PEFT folder; bring it back with\n");
        b.Append($"`Import-LoraModel <the model> | Import-LoraAdapter -Path ./{TrainingJobScript.AdapterFolder}`. Checkpoints and logs go to `{TrainingJobScript.OutputFolder}/`; `--resume` continues from the latest.\n\n");
        b.Append("## The data\n\n");
        b.Append($"`{TrainingJobScript.DataFolder}/{TrainingJobData.TrainFile}`: {Count(data.TrainRecords, "record")} from {Count(data.TrainDocuments, "document")}; ");
        b.Append(data.ValidationDocuments > 0 ? $"`{TrainingJobScript.DataFolder}/{TrainingJobData.ValidationFile}`: {Count(data.ValidationRecords, "record")} from {Count(data.ValidationDocuments, "document")}, " : "no validation data, ");
        b.Append("split as `Start-LoraTraining` splits it. ");
        b.Append(data.Kind switch
        {
            JobRecordKind.Text => "Records are `{\"text\"}` (a text file is one record); the loss is on every token.",
            JobRecordKind.PromptCompletion => "Records are `{\"prompt\", \"completion\"}`; the loss is on the completion.",
            JobRecordKind.Conversation => "Records are `{\"messages\"}`; the loss is on every token (-ChatLoss AllTokens).",
            _ => "Each conversation became one conversational `{\"prompt\", \"completion\"}` record per assistant turn, so the loss is on every assistant turn with any chat template (TRL's `assistant_only_loss` needs `{% generation %}` markers most templates lack).",
        });
        b.Append(o.ChatTemplate is null ? "\n\n" : $" `{TrainingJobScript.ChatTemplateFile}` is the chat template LoraShell rendered them with; train.py sets it on the tokenizer.\n\n");
        b.Append("## Settings\n\n| LoraShell | here |\n|---|---|\n");
        void Row(string ours, string theirs) => b.Append($"| {ours} | {theirs} |\n");
        Row($"adapter r {o.Lora.R}, alpha {N(o.Lora.LoraAlpha)}, dropout {N(o.Lora.LoraDropout)}, targets {(o.Lora.TargetRegex ?? string.Join(", ", o.Lora.TargetModules ?? Array.Empty<string>()))}", "`LORA_CONFIG` (the keys of its adapter_config.json that LoraConfig takes)");
        Row(t.MaxSteps is int s ? $"-MaxSteps {s}" : $"-Epochs {N(t.Epochs!.Value)}", t.MaxSteps is not null ? "`max_steps`" : "`num_train_epochs`");
        Row($"-BatchSize {t.BatchSize}, -GradientAccumulationSteps {t.GradientAccumulationSteps}", $"`per_device_train_batch_size`, `gradient_accumulation_steps`: {Count(perStep * o.Gpus, "sequence")} per step over {o.Gpus} GPU{(o.Gpus == 1 ? "" : "s")}{(o.Gpus > 1 ? $" ({o.Gpus}x the {perStep} of a LoraShell step: each GPU takes its own batches)" : "")}");
        Row($"-SequenceLength {t.SequenceLength}, -Packing {t.Packing}", t.Packing == PackingMode.Documents
            ? "`max_length`, `packing_strategy: bfd_split` (whole documents best-fit into windows, a longer one split) with padding-free attention, so no document sees another (FlashAttention 2 from the kernels hub)"
            : "`max_length`, `packing_strategy: wrapped` (one stream cut into windows; a document attends to the ones before it)");
        Row($"-LearningRate {N(t.LearningRate)}, -WarmupSteps {t.WarmupSteps}, cosine to {N(t.MinLearningRateRatio)} x", "`learning_rate`, `warmup_steps`; `learning_rate_factor` in train.py is LoraShell's schedule step for step (it replaces `cosine_with_min_lr`, which starts warmup at 0 and ends one step short)");
        Row($"AdamW (betas {N(t.Beta1)}, {N(t.Beta2)}, eps {N(t.AdamEpsilon)}), -WeightDecay {N(t.WeightDecay)}, -MaxGradNorm {N(t.MaxGradNorm)}", "`optim: adamw_torch`, `adam_beta1/2`, `adam_epsilon`, `weight_decay` (not on biases and norms, in both), `max_grad_norm`");
        Row($"-GradientCheckpointing {(t.GradientCheckpointing ? "on" : "off")}", "`gradient_checkpointing`");
        Row($"-Seed {t.Seed}", "`seed`, `data_seed` (the data order is TRL's, not LoraShell's)");
        Row($"-EvalEvery {t.EvalEvery}, -CheckpointEvery {t.CheckpointEvery}, -KeepCheckpoints {t.KeepCheckpoints}", "`eval_on_start`, `eval_steps` (and once more at the end), `save_steps`, `save_total_limit`");
        if (o.Quantization != BaseQuantization.None)
            Row($"Import-LoraModel -Quantization {o.Quantization}{(o.DoubleQuant ? " -DoubleQuant" : "")}", "`QUANTIZATION` (bitsandbytes; bf16 compute and storage)");
        b.Append("\n## What differs from the LoraShell run\n\n");
        b.Append("- Precision: bf16 weights and autocast on the GPU; LoraShell trains in the model's dtype (float32 on the CPU).\n");
        b.Append("- TRL appends the tokenizer's EOS token to each text and completion that does not end with it; LoraShell does not, so the job also learns to stop.\n");
        if (o.Gpus > 1) b.Append($"- Data parallel: each step sees {o.Gpus}x the sequences of a LoraShell step; lower -MaxSteps or raise the learning rate to match.\n");
        b.Append("\n## What was checked\n\n");
        b.Append("LoraShell's tests compile train.py (`python3 -m py_compile`), read `LORA_CONFIG`, `TRAINING_ARGS` and the schedule back and compare them with the LoraShell settings, ");
        b.Append("and check the Accelerate config's keys against Accelerate's `ClusterConfig`. The pinned stack was not installed by those tests: run the job once on a small model before a long run.\n");
        return b.ToString();
    }
}
