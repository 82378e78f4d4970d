using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.Jobs;
using LoraShell.Core.Lora;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Training;

namespace LoraShell.Core.Tests.TrainingJobs;

/// <summary>
/// Export-LoraTrainingJob's folders read back by Python as the job's users' tools would
/// (tests/reference/training_job_check.py: py_compile, the module imported without the training stack,
/// yaml.safe_load against Accelerate's ClusterConfig keys), and compared with the LoraShell settings
/// they were written from, the learning-rate schedule with LoraShell's own step for step.
/// </summary>
public class TrainingJobTests
{
    /// <summary>What Python read from the job folder.</summary>
    static JsonObject ReadBack(string job, int totalSteps)
    {
        var (exitCode, stdout, stderr) = ReferenceScripts.Run("training_job_check.py", job, totalSteps.ToString());
        if (exitCode != 0 && stderr.Contains("No module named 'yaml'"))
            throw new InvalidOperationException($"{ReferenceScripts.Python} has no yaml module; install Debian's python3-yaml (tests/run.sh does).");
        Assert.True(exitCode == 0, $"training_job_check.py failed (exit {exitCode}):\n{stderr}");
        return JsonNode.Parse(stdout)!.AsObject();
    }

    static TrainingJobOptions Options(TrainingOptions training, LoraConfig? lora = null) => new()
    {
        ModelNameOrPath = "example/tiny-llama", Lora = lora ?? new LoraConfig(), Training = training,
    };

    static string WriteJsonl(TempFolder dir, string name, IEnumerable<object> records)
    {
        string path = dir.File(name);
        File.WriteAllLines(path, records.Select(r => JsonSerializer.Serialize(r)));
        return path;
    }

    [Fact]
    public void ScriptCompilesAndStatesTheRunsSettings()
    {
        using var dir = new TempFolder();
        var lora = new LoraConfig { R = 16, LoraAlpha = 32, LoraDropout = 0.05, TargetModules = null, TargetRegex = LoraConfig.AllLinear, UseRsLora = true, UseDora = true };
        var training = new TrainingOptions
        {
            DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 37, BatchSize = 4, SequenceLength = 128, LearningRate = 2e-4,
            WarmupSteps = 5, GradientAccumulationSteps = 3, WeightDecay = 0.01, MaxGradNorm = 0.5, Seed = 99, GradientCheckpointing = true,
            EvalEvery = 10, CheckpointEvery = 20, KeepCheckpoints = 2, ValidationFraction = 0.1,
        };
        var options = Options(training, lora) with { Strategy = DistributedStrategy.Fsdp, Gpus = 12 };
        var result = TrainingJobWriter.Write(options, dir.File("job"), overwrite: false);
        Assert.Equal(new[] { "README.md", "accelerate_config.yaml", "data/train.jsonl", "data/validation.jsonl", "requirements.txt", "train.py" }, result.Files);

        var job = ReadBack(result.Folder.FullName, 37);
        var l = job["lora_config"]!.AsObject();
        Assert.Equal(16, (int)l["r"]!);
        Assert.Equal(32.0, (double)l["lora_alpha"]!);
        Assert.Equal(0.05, (double)l["lora_dropout"]!);
        Assert.Equal("all-linear", (string)l["target_modules"]!);
        Assert.True((bool)l["use_rslora"]! && (bool)l["use_dora"]!);
        Assert.Equal("none", (string)l["bias"]!);
        Assert.Equal("CAUSAL_LM", (string)l["task_type"]!);
        Assert.Null(job["quantization"]);

        var t = job["training_args"]!.AsObject();
        Assert.Equal(37, (int)t["max_steps"]!);
        Assert.Equal(4, (int)t["per_device_train_batch_size"]!);
        Assert.Equal(3, (int)t["gradient_accumulation_steps"]!);
        Assert.Equal(128, (int)t["max_length"]!);
        Assert.Equal(2e-4, (double)t["learning_rate"]!);
        Assert.Equal(5, (int)t["warmup_steps"]!);
        Assert.Equal(0.01, (double)t["weight_decay"]!);
        Assert.Equal(0.5, (double)t["max_grad_norm"]!);
        Assert.Equal((training.Beta1, training.Beta2, training.AdamEpsilon), ((double)t["adam_beta1"]!, (double)t["adam_beta2"]!, (double)t["adam_epsilon"]!));
        Assert.Equal(99, (long)t["seed"]!);
        Assert.True((bool)t["gradient_checkpointing"]!);
        Assert.Equal(("bfd_split", true), ((string)t["packing_strategy"]!, (bool)t["padding_free"]!));
        Assert.False((bool)t["completion_only_loss"]!);
        Assert.Equal(("steps", 10, true), ((string)t["eval_strategy"]!, (int)t["eval_steps"]!, (bool)t["eval_on_start"]!));
        Assert.Equal((20, 2), ((int)t["save_steps"]!, (int)t["save_total_limit"]!));
        Assert.Equal("kernels-community/flash-attn2", (string)job["model_init_kwargs"]!["attn_implementation"]!);

        // The schedule train.py installs is LoraShell's, step for step.
        var schedule = new LearningRateSchedule(training.LearningRate, training.WarmupSteps, 37, training.MinLearningRateRatio);
        var factors = job["learning_rate_factors"]!.AsArray().Select(n => (double)n!).ToArray();
        for (int s = 0; s < 37; s++) Assert.Equal(schedule.At(s) / training.LearningRate, factors[s], 12);

        var a = job["accelerate"]!.AsObject();
        Assert.Equal(("FSDP", 12, 2, "bf16"), ((string)a["distributed_type"]!, (int)a["num_processes"]!, (int)a["num_machines"]!, (string)a["mixed_precision"]!));
        Assert.False((bool)a["fsdp_config"]!["fsdp_use_orig_params"]!);
        Assert.Equal("no", (string)a["downcast_bf16"]!);

        // One text file: split at the same character as Start-LoraTraining splits it.
        string text = File.ReadAllText(SharedData.TinyShakespeare);
        int cut = TokenCorpus.TextCut(text, 0.1);
        Assert.Equal(text[..cut], (string)job["data"]!["train"]![0]!["text"]!);
        Assert.Equal(text[cut..], (string)job["data"]!["validation"]![0]!["text"]!);
        Assert.Contains("trl==1.9.0", File.ReadAllLines(Path.Combine(result.Folder.FullName, "requirements.txt")));
    }

    [Fact]
    public void QuantizedBaseBecomesQLoraAndZeroThreeShardsIt()
    {
        using var dir = new TempFolder();
        string data = WriteJsonl(dir, "d.jsonl", Enumerable.Range(0, 6).Select(i => new { text = $"record {i}" }));
        var training = new TrainingOptions { DataPaths = new[] { data }, Epochs = 1.5, Packing = PackingMode.Stream, ValidationFraction = 0 };
        var options = Options(training) with { Quantization = BaseQuantization.Nf4, DoubleQuant = true, Strategy = DistributedStrategy.DeepSpeedZero3, Gpus = 2 };
        var result = TrainingJobWriter.Write(options, dir.File("job"), overwrite: false);
        Assert.DoesNotContain("data/validation.jsonl", result.Files);

        var job = ReadBack(result.Folder.FullName, 10);
        var q = job["quantization"]!.AsObject();
        Assert.True((bool)q["load_in_4bit"]!);
        Assert.Equal(("nf4", true, "bfloat16"), ((string)q["bnb_4bit_quant_type"]!, (bool)q["bnb_4bit_use_double_quant"]!, (string)q["bnb_4bit_quant_storage"]!));
        var t = job["training_args"]!.AsObject();
        Assert.Equal((-1, 1.5), ((int)t["max_steps"]!, (double)t["num_train_epochs"]!));
        Assert.Equal(("wrapped", false), ((string)t["packing_strategy"]!, (bool)t["padding_free"]!));
        Assert.Equal("no", (string)t["eval_strategy"]!);
        Assert.Equal("sdpa", (string)job["model_init_kwargs"]!["attn_implementation"]!);
        Assert.True(job["model_init_kwargs"]!.AsObject().ContainsKey("device_map") && job["model_init_kwargs"]!["device_map"] is null);
        var a = job["accelerate"]!.AsObject();
        Assert.Equal(("DEEPSPEED", 2, 3), ((string)a["distributed_type"]!, (int)a["num_processes"]!, (int)a["deepspeed_config"]!["zero_stage"]!));
        Assert.Equal(6, job["data"]!["train"]!.AsArray().Count);
        var requirements = File.ReadAllLines(Path.Combine(result.Folder.FullName, "requirements.txt"));
        Assert.Contains(requirements, l => l.StartsWith("bitsandbytes=="));
        Assert.Contains(requirements, l => l.StartsWith("deepspeed=="));
    }

    [Fact]
    public void TargetsAndPatternsSurviveAsPythonLiterals()
    {
        using var dir = new TempFolder();
        string data = WriteJsonl(dir, "d.jsonl", new[] { new { text = "a" }, new { text = "b" } });
        var lora = new LoraConfig
        {
            TargetModules = null, TargetRegex = @".*\.layers\.\d+\.(q_proj|v_proj)$",
            RankPattern = new Dictionary<string, int> { ["layers.0.\"q\"\\proj"] = 4 },
            AlphaPattern = new Dictionary<string, double> { ["v_proj"] = 0.125 },
            ModulesToSave = new[] { "lm_head" }, LayersToTransform = new[] { 0, 2 }, LayersPattern = "layers",
        };
        var result = TrainingJobWriter.Write(Options(new TrainingOptions { DataPaths = new[] { data }, MaxSteps = 1, ValidationFraction = 0 }, lora) with { Strategy = DistributedStrategy.SingleGpu }, dir.File("job"), overwrite: false);
        var l = ReadBack(result.Folder.FullName, 1)["lora_config"]!.AsObject();
        Assert.Equal(lora.TargetRegex, (string)l["target_modules"]!);
        Assert.Equal(4, (int)l["rank_pattern"]!["layers.0.\"q\"\\proj"]!);
        Assert.Equal(0.125, (double)l["alpha_pattern"]!["v_proj"]!);
        Assert.Equal(new[] { "lm_head" }, l["modules_to_save"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(new[] { 0, 2 }, l["layers_to_transform"]!.AsArray().Select(n => (int)n!));
        Assert.Equal("layers", (string)l["layers_pattern"]!);
    }

    static object Turn(string role, string content) => new { role, content };

    [Fact]
    public void ConversationsBecomeOnePromptCompletionRecordPerAssistantTurn()
    {
        using var dir = new TempFolder();
        var conversations = new[]
        {
            new { messages = new[] { Turn("user", "hi"), Turn("assistant", "hello") } },
            new { messages = new[] { Turn("system", "be brief"), Turn("user", "2+2?"), Turn("assistant", "4"), Turn("user", "and 3+3?"), Turn("assistant", "6") } },
            new { messages = new[] { Turn("user", "«quoted» \"text\"\nnew line"), Turn("assistant", "ok 👍") } },
            new { messages = new[] { Turn("user", "x"), Turn("assistant", "y"), Turn("user", "z"), Turn("assistant", "w") } },
            new { messages = new[] { Turn("user", "held out"), Turn("assistant", "for validation") } },
        };
        string data = WriteJsonl(dir, "chat.jsonl", conversations);
        string template = JsonNode.Parse(File.ReadAllText(SharedData.Path_("tokenizers", "qwen3", "tokenizer_config.json")))!["chat_template"]!.GetValue<string>();
        var training = new TrainingOptions { DataPaths = new[] { data }, MaxSteps = 3, ValidationFraction = 0.2 };
        var result = TrainingJobWriter.Write(Options(training) with { ChatTemplate = template, Strategy = DistributedStrategy.SingleGpu }, dir.File("job"), overwrite: false);
        Assert.Equal((JobRecordKind.ConversationTurns, 6, 1, 4, 1), (result.Data.Kind, result.Data.TrainRecords, result.Data.ValidationRecords, result.Data.TrainDocuments, result.Data.ValidationDocuments));
        Assert.Equal(template, File.ReadAllText(Path.Combine(result.Folder.FullName, "chat_template.jinja")));

        var job = ReadBack(result.Folder.FullName, 3);
        Assert.Equal("chat_template.jinja", (string)job["chat_template_file"]!);
        Assert.True((bool)job["training_args"]!["completion_only_loss"]!);
        var train = job["data"]!["train"]!.AsArray();
        // The second conversation's second turn: everything before it is the prompt, the turn itself the completion.
        var turn = train[2]!.AsObject();
        Assert.Equal(new[] { "system", "user", "assistant", "user" }, turn["prompt"]!.AsArray().Select(m => (string)m!["role"]!));
        Assert.Equal("6", (string)turn["completion"]![0]!["content"]!);
        Assert.Equal("ok 👍", (string)train[3]!["completion"]![0]!["content"]!);
        Assert.Equal("«quoted» \"text\"\nnew line", (string)train[3]!["prompt"]![0]!["content"]!);
        Assert.Equal("for validation", (string)job["data"]!["validation"]![0]!["completion"]![0]!["content"]!);

        var all = TrainingJobWriter.Write(Options(training with { ChatLoss = ChatLoss.AllTokens }) with { ChatTemplate = template, Strategy = DistributedStrategy.SingleGpu }, dir.File("job-all"), overwrite: false);
        var allJob = ReadBack(all.Folder.FullName, 3);
        Assert.Equal(JobRecordKind.Conversation, all.Data.Kind);
        Assert.False((bool)allJob["training_args"]!["completion_only_loss"]!);
        Assert.Equal(5, allJob["data"]!["train"]![1]!["messages"]!.AsArray().Count);
    }

    [Fact]
    public void PromptCompletionRecordsSplitAsStartLoraTrainingSplitsThem()
    {
        using var dir = new TempFolder();
        var records = Enumerable.Range(0, 10).Select(i => new { prompt = $"Q{i}: \\ \"why\"?", completion = $" A{i}\t✓" }).ToList();
        string data = WriteJsonl(dir, "pairs.jsonl", records);
        var result = TrainingJobWriter.Write(Options(new TrainingOptions { DataPaths = new[] { data }, MaxSteps = 2, ValidationFraction = 0.25 }) with { Strategy = DistributedStrategy.SingleGpu }, dir.File("job"), overwrite: false);
        int held = TokenCorpus.HeldOutDocuments(10, 0.25);
        var job = ReadBack(result.Folder.FullName, 2);
        var train = job["data"]!["train"]!.AsArray();
        var validation = job["data"]!["validation"]!.AsArray();
        Assert.Equal((10 - held, held), (train.Count, validation.Count));
        for (int i = 0; i < 10; i++)
        {
            var r = (i < 10 - held ? train[i] : validation[i - (10 - held)])!;
            Assert.Equal((records[i].prompt, records[i].completion), ((string)r["prompt"]!, (string)r["completion"]!));
        }
        Assert.True((bool)job["training_args"]!["completion_only_loss"]!);
        // No -EvalEvery: evaluated before training and at the last step, as Start-LoraTraining does.
        Assert.Equal(("steps", 2, true), ((string)job["training_args"]!["eval_strategy"]!, (int)job["training_args"]!["eval_steps"]!, (bool)job["training_args"]!["eval_on_start"]!));
    }

    static void AssertRefused(string errorId, Func<object> write, string folder)
    {
        var e = Assert.Throws<LoraShellException>(write);
        Assert.Equal(errorId, e.ErrorId);
        Assert.False(Directory.Exists(folder), $"'{folder}' was left behind");
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(folder)!), p => Path.GetFileName(p).StartsWith(Path.GetFileName(folder) + "."));
    }

    [Fact]
    public void BadInputIsRefusedByNameAndLeavesNothingBehind()
    {
        using var dir = new TempFolder();
        string job = dir.File("job");
        var mixedLines = new List<object>();
        for (int i = 0; i < 5; i++) mixedLines.Add(new { text = $"t{i}" });
        mixedLines.Add(new { prompt = "p", completion = "c" });
        string mixed = WriteJsonl(dir, "mixed.jsonl", mixedLines);
        var e = Assert.Throws<LoraShellException>(() => TrainingJobWriter.Write(Options(new TrainingOptions { DataPaths = new[] { mixed }, MaxSteps = 1, ValidationFraction = 0 }) with { Strategy = DistributedStrategy.SingleGpu }, job, false));
        Assert.Equal("MixedRecordKinds", e.ErrorId);
        Assert.Contains("line 6", e.Message);
        Assert.Contains("line 1", e.Message);
        Assert.False(Directory.Exists(job));
        Assert.Equal(new[] { "mixed.jsonl" }, Directory.EnumerateFileSystemEntries(dir.Path).Select(Path.GetFileName));

        string chat = WriteJsonl(dir, "chat.jsonl", new[] { new { messages = new[] { Turn("user", "a"), Turn("assistant", "b") } } });
        AssertRefused("NoChatTemplate", () => TrainingJobWriter.Write(Options(new TrainingOptions { DataPaths = new[] { chat }, MaxSteps = 1, ValidationFraction = 0 }) with { Strategy = DistributedStrategy.SingleGpu }, job, false), job);
        string text = WriteJsonl(dir, "t.jsonl", new[] { new { text = "a" }, new { text = "b" } });
        var ok = new TrainingOptions { DataPaths = new[] { text }, MaxSteps = 1, ValidationFraction = 0 };
        AssertRefused("JobMethodNotSupported", () => TrainingJobWriter.Write(Options(ok with { Method = TrainingMethod.Ladder }), job, false), job);
        AssertRefused("JobTaskNotSupported", () => TrainingJobWriter.Write(Options(ok with { Task = TrainingTask.Classification }), job, false), job);
        AssertRefused("JobLoraPlusNotSupported", () => TrainingJobWriter.Write(Options(ok with { LoraPlusRatio = 16 }), job, false), job);
        AssertRefused("Int8CannotShard", () => TrainingJobWriter.Write(Options(ok) with { Quantization = BaseQuantization.Int8, Strategy = DistributedStrategy.Fsdp, Gpus = 2 }, job, false), job);
        AssertRefused("SingleGpuStrategyWithSeveralGpus", () => TrainingJobWriter.Write(Options(ok) with { Strategy = DistributedStrategy.SingleGpu, Gpus = 4 }, job, false), job);
        AssertRefused("NoStopCondition", () => TrainingJobWriter.Write(Options(ok with { MaxSteps = null }), job, false), job);

        Directory.CreateDirectory(job);
        File.WriteAllText(Path.Combine(job, "keep.txt"), "mine");
        var exists = Assert.Throws<LoraShellException>(() => TrainingJobWriter.Write(Options(ok) with { Strategy = DistributedStrategy.SingleGpu }, job, false));
        Assert.Equal("OutputPathExists", exists.ErrorId);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(job, "keep.txt")));
        TrainingJobWriter.Write(Options(ok) with { Strategy = DistributedStrategy.SingleGpu }, job, overwrite: true);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(job, "keep.txt"))); // -Force keeps the user's own files, as every LoraShell writer does
        Assert.True(File.Exists(Path.Combine(job, "train.py")));
    }
}
