using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Training;

namespace LoraShell.Core.Jobs;

/// <summary>
/// Writes a job's <c>train.py</c>: TRL's SFTTrainer with a PEFT LoraConfig, both stated as literal dicts
/// at the top (LORA_CONFIG, TRAINING_ARGS, QUANTIZATION, MODEL_INIT_KWARGS), and the learning-rate
/// schedule of LoraShell's trainer step for step. The training stack is imported inside main(), so the
/// settings can be read, and checked, where it is not installed.
/// </summary>
public static class TrainingJobScript
{
    public const string FileName = "train.py", AdapterFolder = "adapter", OutputFolder = "output", DataFolder = "data",
        ChatTemplateFile = "chat_template.jinja";

    /// <summary>The attention kernel: padding-free packing needs a FlashAttention variant (TRL warns of cross-document attention otherwise).</summary>
    public static string AttentionFor(PackingMode packing) => packing == PackingMode.Documents ? "kernels-community/flash-attn2" : "sdpa";

    /// <summary>PEFT LoraConfig keyword arguments: adapter_config.json's keys that are LoraConfig fields, values as LoraShell writes them.</summary>
    public static List<KeyValuePair<string, object?>> LoraArguments(TrainingJobOptions o)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(o.Lora.ToJson())!.AsObject();
        string[] keys = { "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora", "use_dora", "init_lora_weights",
            "fan_in_fan_out", "modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform", "layers_pattern", "trainable_token_indices" };
        var result = keys.Where(json.ContainsKey).Select(k => KeyValuePair.Create(k, (object?)json[k]?.DeepClone())).ToList();
        result.Add(new("task_type", "CAUSAL_LM"));
        return result;
    }

    /// <summary>transformers' BitsAndBytesConfig for the base LoraShell quantizes (bf16 compute; bf16 storage so FSDP and ZeRO-3 can shard the 4-bit weights).</summary>
    public static List<KeyValuePair<string, object?>>? QuantizationArguments(TrainingJobOptions o) => o.Quantization switch
    {
        BaseQuantization.Nf4 => new()
        {
            new("load_in_4bit", true), new("bnb_4bit_quant_type", "nf4"), new("bnb_4bit_use_double_quant", o.DoubleQuant),
            new("bnb_4bit_compute_dtype", "bfloat16"), new("bnb_4bit_quant_storage", "bfloat16"),
        },
        BaseQuantization.Int8 => new() { new("load_in_8bit", true) },
        _ => null,
    };

    public static List<KeyValuePair<string, object?>> ModelInitArguments(TrainingJobOptions o)
    {
        var args = new List<KeyValuePair<string, object?>> { new("dtype", "bfloat16"), new("attn_implementation", AttentionFor(o.Training.Packing)) };
        // Sharded runs load on the CPU and let FSDP / ZeRO-3 place the shards ("auto" would spread every rank's copy over all GPUs).
        if (o.Strategy != DistributedStrategy.SingleGpu) args.Add(new("device_map", null));
        return args;
    }

    /// <summary>SFTConfig keyword arguments (output_dir and model_init_kwargs are added by the script).</summary>
    public static List<KeyValuePair<string, object?>> TrainingArguments(TrainingJobOptions o, JobRecordKind kind, bool hasValidation)
    {
        var t = o.Training;
        var a = new List<KeyValuePair<string, object?>>();
        void Add(string key, object? value) => a.Add(new(key, value));
        if (t.MaxSteps is int steps) Add("max_steps", steps);
        else { Add("max_steps", -1); Add("num_train_epochs", t.Epochs!.Value); }
        Add("per_device_train_batch_size", t.BatchSize);
        Add("per_device_eval_batch_size", t.BatchSize);
        Add("gradient_accumulation_steps", t.GradientAccumulationSteps);
        Add("learning_rate", t.LearningRate);
        Add("warmup_steps", t.WarmupSteps);
        // The nearest built-in schedule; train.py replaces it by LoraShell's exact one (learning_rate_factor).
        Add("lr_scheduler_type", "cosine_with_min_lr");
        Add("lr_scheduler_kwargs", new List<KeyValuePair<string, object?>> { new("min_lr_rate", t.MinLearningRateRatio) });
        Add("optim", "adamw_torch");
        Add("adam_beta1", t.Beta1);
        Add("adam_beta2", t.Beta2);
        Add("adam_epsilon", t.AdamEpsilon);
        Add("weight_decay", t.WeightDecay);
        Add("max_grad_norm", t.MaxGradNorm);
        Add("seed", t.Seed);
        Add("data_seed", t.Seed);
        Add("gradient_checkpointing", t.GradientCheckpointing);
        Add("bf16", true);
        Add("max_length", t.SequenceLength);
        Add("packing", true);
        // Documents: whole documents best-fit into windows, a longer one split, each read alone (padding-free);
        // Stream: one continuous stream cut into windows.
        Add("packing_strategy", t.Packing == PackingMode.Documents ? "bfd_split" : "wrapped");
        Add("padding_free", t.Packing == PackingMode.Documents);
        Add("completion_only_loss", kind is JobRecordKind.PromptCompletion or JobRecordKind.ConversationTurns);
        Add("assistant_only_loss", false);
        Add("dataset_text_field", "text");
        if (hasValidation)
        {
            // Before training, every -EvalEvery steps, and at the end: without -EvalEvery once per run (its
            // last step) or per epoch; train.py evaluates once more if the last step was not evaluated.
            int? every = t.EvalEvery > 0 ? t.EvalEvery : t.MaxSteps;
            Add("eval_strategy", every is null ? "epoch" : "steps");
            if (every is not null) Add("eval_steps", every);
            Add("eval_on_start", true);
        }
        else Add("eval_strategy", "no");
        Add("save_strategy", t.CheckpointEvery > 0 ? "steps" : "no");
        if (t.CheckpointEvery > 0)
        {
            Add("save_steps", t.CheckpointEvery);
            Add("save_total_limit", t.KeepCheckpoints > 0 ? t.KeepCheckpoints : null);
        }
        Add("logging_steps", 1);
        Add("report_to", "none");
        return a;
    }

    public static string Render(TrainingJobOptions o, JobRecordKind kind, bool hasValidation, string modelNameOrPath)
    {
        var quantization = QuantizationArguments(o);
        string P(object? v) => PythonLiteral.Of(v);
        return $$""""
            #!/usr/bin/env python3
            # Written by LoraShell's Export-LoraTrainingJob: the LoraShell training run below, as TRL's SFTTrainer with a
            # PEFT LoraConfig, for {{AccelerateConfig.Describe(o)}}. Run it from this folder:
            #
            #   pip install -r requirements.txt
            #   accelerate launch --config_file {{AccelerateConfig.FileName}} {{FileName}}
            #
            # The trained adapter is written to {{AdapterFolder}}/ as a PEFT folder (Import-LoraAdapter reads it).
            # README.md maps each LoraShell setting to the keys below and says what differs.
            import argparse
            import math
            import os

            HERE = os.path.dirname(os.path.abspath(__file__))

            # A Hugging Face hub id, or a folder (relative paths are read from this job's folder).
            MODEL = {{P(modelNameOrPath)}}

            # peft.LoraConfig(**LORA_CONFIG): the adapter's settings, as its adapter_config.json states them.
            LORA_CONFIG = {{PythonLiteral.Block(LoraArguments(o))}}

            # transformers.BitsAndBytesConfig(**QUANTIZATION) for a quantized base (None: a bf16 base).
            QUANTIZATION = {{(quantization is null ? "None" : PythonLiteral.Block(quantization))}}

            # from_pretrained keyword arguments (SFTConfig.model_init_kwargs).
            MODEL_INIT_KWARGS = {{PythonLiteral.Block(ModelInitArguments(o))}}

            # trl.SFTConfig(**TRAINING_ARGS, output_dir=..., model_init_kwargs=MODEL_INIT_KWARGS).
            TRAINING_ARGS = {{PythonLiteral.Block(TrainingArguments(o, kind, hasValidation))}}

            # The data, split as Start-LoraTraining splits it ({{kind}} records).
            DATA_FILES = {{P(new List<KeyValuePair<string, object?>> { new("train", $"{DataFolder}/{TrainingJobData.TrainFile}") }
                .Concat(hasValidation ? new[] { KeyValuePair.Create("validation", (object?)$"{DataFolder}/{TrainingJobData.ValidationFile}") } : Array.Empty<KeyValuePair<string, object?>>()))}}

            # The chat template LoraShell rendered the conversations with (None: the tokenizer's own).
            CHAT_TEMPLATE_FILE = {{P(o.ChatTemplate is null ? null : ChatTemplateFile)}}

            ADAPTER_DIR = {{P(AdapterFolder)}}
            OUTPUT_DIR = {{P(OutputFolder)}}


            def learning_rate_factor(step, total_steps, warmup_steps={{o.Training.WarmupSteps}}, min_ratio={{PythonLiteral.Number(o.Training.MinLearningRateRatio)}}):
                """The multiple of the peak learning rate for optimizer step `step` (0-based), as LoraShell's trainer sets it:
                linear warmup over `warmup_steps` (the first step already at 1/warmup_steps), then a cosine decay that reaches
                min_ratio at the last step. transformers' cosine_with_min_lr starts warmup at 0 and ends one step short."""
                if warmup_steps > 0 and step < warmup_steps:
                    return (step + 1) / warmup_steps
                decay_steps = max(1, total_steps - warmup_steps - 1)
                progress = min(max((step - warmup_steps) / decay_steps, 0.0), 1.0)
                return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


            def local(path):
                return path if os.path.isabs(path) else os.path.join(HERE, path)


            def main():
                parser = argparse.ArgumentParser(description="LoraShell training job: TRL SFTTrainer + PEFT LoRA under Accelerate.")
                parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output/")
                cli = parser.parse_args()

                # The training stack is imported here, so the settings above can be read (and checked) without it.
                from datasets import load_dataset
                from peft import LoraConfig
                from torch.optim.lr_scheduler import LambdaLR
                from transformers import AutoTokenizer, BitsAndBytesConfig
                from trl import SFTConfig, SFTTrainer

                class LoraShellScheduleTrainer(SFTTrainer):
                    # Trainer's documented hook for the schedule: LoraShell's, step for step.
                    def create_scheduler(self, num_training_steps, optimizer=None):
                        if self.lr_scheduler is None:
                            self.lr_scheduler = LambdaLR(
                                optimizer if optimizer is not None else self.optimizer,
                                lambda step: learning_rate_factor(step, num_training_steps),
                            )
                            self._created_lr_scheduler = True
                        return self.lr_scheduler

                model = local(MODEL) if os.path.isdir(local(MODEL)) else MODEL
                tokenizer = AutoTokenizer.from_pretrained(model)
                if CHAT_TEMPLATE_FILE is not None:
                    with open(local(CHAT_TEMPLATE_FILE), encoding="utf-8") as f:
                        tokenizer.chat_template = f.read()
                data = load_dataset("json", data_files={split: local(path) for split, path in DATA_FILES.items()})

                trainer = LoraShellScheduleTrainer(
                    model=model,
                    args=SFTConfig(**TRAINING_ARGS, output_dir=local(OUTPUT_DIR), model_init_kwargs=MODEL_INIT_KWARGS),
                    train_dataset=data["train"],
                    eval_dataset=data.get("validation"),
                    processing_class=tokenizer,
                    peft_config=LoraConfig(**LORA_CONFIG),
                    quantization_config=None if QUANTIZATION is None else BitsAndBytesConfig(**QUANTIZATION),
                )
                if getattr(trainer.accelerator.state, "fsdp_plugin", None) is not None:
                    # PEFT's policy wraps trainable and frozen weights apart (FSDP with use_orig_params false).
                    from peft.utils.other import fsdp_auto_wrap_policy

                    trainer.accelerator.state.fsdp_plugin.auto_wrap_policy = fsdp_auto_wrap_policy(trainer.model)
                if hasattr(trainer.model, "print_trainable_parameters"):
                    trainer.model.print_trainable_parameters()

                trainer.train(resume_from_checkpoint=True if cli.resume else None)
                if "validation" in data:
                    step = trainer.state.global_step
                    if not any("eval_loss" in entry and entry.get("step") == step for entry in trainer.state.log_history):
                        trainer.evaluate()
                if trainer.is_fsdp_enabled:
                    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
                trainer.save_model(local(ADAPTER_DIR))


            if __name__ == "__main__":
                main()

            """";
    }
}
