using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// One training loop for every method (nanoGPT's shape): seeded batches, AdamW, linear warmup then
/// cosine decay, gradient accumulation and clipping, validation every N steps, metrics.jsonl as it
/// goes, atomic checkpoints that resume to the same loss curve, and a clean stop on cancellation.
/// </summary>
public static class Trainer
{
    public const string MetricsFile = "metrics.jsonl";
    public const string AdapterFolder = "adapter";
    public const string ModelFolder = "model";
    public const string SideNetworkFolder = "side-network";

    public static TrainingResult Run(LoadedModel loaded, TrainingOptions o, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancel = default, Action<string>? log = null)
    {
        o.Validate();
        if (o.IsClassification) return ClassificationTrainer.Run(loaded, o, progress, cancel, log);
        var tokenizer = loaded.RequireTokenizer();
        var model = loaded.Model;
        string? output = o.OutputPath is null ? null : Path.GetFullPath(o.OutputPath);
        if (output != null) EnsureWritable(output);

        var corpus = TokenCorpus.Load(o.DataPaths, o.ValidationPaths, o.ValidationFraction, tokenizer, output is null ? null : Path.Combine(output, ".cache"));
        string? adapter = PrepareMethod(loaded, o, corpus.Train, log);
        var side = o.Method == TrainingMethod.Ladder ? loaded.SideNetwork : null;
        var trainable = TrainableOf(model, side);
        Func<Tensor, Tensor> forward = side is null ? model.forward : ids => side.Forward(model, ids);
        // Training goes through the final hidden states: the loss is computed a chunk of tokens at a time.
        var hidden = HiddenStatesOf(model, side);
        if (trainable.Count == 0) throw new LoraShellException(LoraErrorKind.InvalidOperation, "NothingToTrain", "No parameter is trainable for this method.");

        log?.Invoke($"Data: {corpus.Train.Length:N0} training tokens, {corpus.Validation.Length:N0} validation tokens{(corpus.FromCache ? " (from cache)" : "")}.");
        var sampler = new BatchSampler(corpus.Train, o.SequenceLength, o.Seed);
        if (sampler.WindowCount == 0)
            throw LoraShellException.InvalidData("DataTooSmall",
                $"The training data holds {corpus.Train.Length} tokens; one window of -SequenceLength {o.SequenceLength} needs {o.SequenceLength + 1}.", o.DataPaths[0]);
        var validation = new BatchSampler(corpus.Validation, o.SequenceLength, o.Seed);
        int rowsPerStep = o.BatchSize * o.GradientAccumulationSteps;
        int totalSteps = o.MaxSteps ?? Math.Max(1, (int)Math.Ceiling(o.Epochs!.Value * sampler.WindowCount / rowsPerStep));
        var schedule = new LearningRateSchedule(o.LearningRate, o.WarmupSteps, totalSteps, o.MinLearningRateRatio);
        string fingerprint = Fingerprint(loaded, o, adapter);

        using var optimizer = new AdamW(trainable.Select(p => (p.name, p.parameter)), o.Beta1, o.Beta2, o.AdamEpsilon, o.WeightDecay);
        var losses = new List<double>();
        var evaluations = new List<EvalRecord>();
        double? initialValidation = null;
        int startStep = 0;
        string? metricsPath = output is null ? null : Path.Combine(output, MetricsFile);

        if (o.Resume)
        {
            string checkpoint = TrainingCheckpoint.Latest(output!) ?? throw LoraShellException.NotFound("NoCheckpoint",
                $"-Resume found no checkpoint in '{Path.Combine(output!, TrainingCheckpoint.Folder)}'. Train with -CheckpointEvery (or stop with Ctrl+C) to create one.", output);
            var state = TrainingCheckpoint.ReadState(checkpoint);
            if (state.Fingerprint != fingerprint || state.Method != o.Method.ToString())
                throw LoraShellException.InvalidData("CheckpointMismatch",
                    $"Checkpoint '{checkpoint}' was written for another model or setup (method {state.Method}, batch {state.BatchSize}, sequence {state.SequenceLength}, adapter {state.AdapterName ?? "-"}); it cannot resume this run (method {o.Method}, batch {o.BatchSize}, sequence {o.SequenceLength}, model '{loaded.Name}').", checkpoint);
            RestoreWeights(loaded, checkpoint, o.Method, adapter);
            TrainingCheckpoint.RestoreOptimizer(checkpoint, optimizer, state.Step);
            startStep = state.Step;
            losses.AddRange(state.Losses);
            evaluations.AddRange(state.Evaluations);
            initialValidation = state.InitialValidationLoss;
            if (metricsPath != null) TruncateMetrics(metricsPath, startStep);
            log?.Invoke($"Resumed from '{checkpoint}' at step {startStep}.");
        }
        else
        {
            manual_seed(o.Seed);
            if (metricsPath != null) File.WriteAllText(metricsPath, "");
        }

        if (!o.Resume && validation.WindowCount > 0)
        {
            initialValidation = Evaluate(forward, model, side, validation, o);
            evaluations.Add(new EvalRecord(0, initialValidation.Value));
            AppendMetrics(metricsPath, new { step = 0, val_loss = initialValidation });
        }

        if (o.TrimMemoryEachStep) { NativeMemory.MapLargeAllocations(); NativeMemory.Trim(); }
        MemoryMeter.ResetPeak();
        double startMemory = MemoryMeter.CurrentMiB;
        var clock = Stopwatch.StartNew();
        var stepTimes = new List<double>();
        long tokensSeen = 0;
        bool cancelled = false;
        string? lastCheckpoint = null;
        int step = startStep;
        model.train();
        side?.train();
        try
        {
            for (; step < totalSteps; step++)
            {
                if (cancel.IsCancellationRequested) { cancelled = true; break; }
                var stepClock = Stopwatch.StartNew();
                double lr = schedule.At(step);
                double lossSum = 0;
                long predicted = 0;
                for (int micro = 0; micro < o.GradientAccumulationSteps; micro++)
                {
                    using var scope = NewDisposeScope();
                    long firstDraw = ((long)step * o.GradientAccumulationSteps + micro) * o.BatchSize;
                    var (inputs, targets) = sampler.Batch(firstDraw, o.BatchSize, model.Device);
                    var flatTargets = targets.reshape(-1);
                    long count = flatTargets.ne(BatchSampler.IgnoreIndex).sum().item<long>();
                    if (count == 0) continue;
                    var states = hidden(inputs);
                    double loss = ChunkedCrossEntropy.SumAndBackward(states.reshape(-1, states.shape[^1]), model.Logits, flatTargets,
                        ChunkedCrossEntropy.RowsPerChunk(model.Config.VocabSize), 1.0 / (count * (double)o.GradientAccumulationSteps), BatchSampler.IgnoreIndex);
                    lossSum += loss / count;
                    predicted += count;
                    tokensSeen += inputs.numel();
                }
                double stepLoss = lossSum / o.GradientAccumulationSteps;
                if (!double.IsFinite(stepLoss))
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "NonFiniteLoss",
                        $"The training loss became {stepLoss} at step {step + 1}; training stopped before the update. " +
                        (lastCheckpoint != null ? $"Last good checkpoint: '{lastCheckpoint}'." : "Lower -LearningRate or add -WarmupSteps."), step + 1);
                if (o.MaxGradNorm > 0) using (NewDisposeScope()) nn.utils.clip_grad_norm_(optimizer.Parameters, o.MaxGradNorm); // grad handles die here
                optimizer.Step(lr);
                optimizer.ZeroGrad();
                if (o.TrimMemoryEachStep) NativeMemory.Trim(); // RSS then tracks live memory (costs page faults)
                losses.Add(stepLoss);
                double seconds = stepClock.Elapsed.TotalSeconds;
                stepTimes.Add(seconds * 1000);

                double? validationLoss = null;
                bool last = step + 1 == totalSteps;
                if (validation.WindowCount > 0 && (last || (o.EvalEvery > 0 && (step + 1) % o.EvalEvery == 0)))
                {
                    validationLoss = Evaluate(forward, model, side, validation, o);
                    evaluations.Add(new EvalRecord(step + 1, validationLoss.Value));
                }
                double tokensPerSecond = rowsPerStep * (double)o.SequenceLength / seconds;
                AppendMetrics(metricsPath, new
                {
                    step = step + 1, loss = stepLoss, lr, tokens_per_s = tokensPerSecond, elapsed_s = clock.Elapsed.TotalSeconds,
                    memory_mib = MemoryMeter.CurrentMiB, val_loss = validationLoss,
                });
                var remaining = TimeSpan.FromSeconds(stepTimes.TakeLast(20).Average() / 1000 * (totalSteps - step - 1));
                progress?.Report(new TrainingProgress(step + 1, totalSteps, stepLoss, lr, tokensPerSecond, clock.Elapsed, remaining, validationLoss));

                if (output != null && o.CheckpointEvery > 0 && (step + 1) % o.CheckpointEvery == 0 && !last)
                    lastCheckpoint = SaveCheckpoint(loaded, o, output, step + 1, totalSteps, fingerprint, adapter, optimizer, losses, evaluations, initialValidation);
            }
        }
        finally { model.eval(); side?.eval(); }

        if (cancelled && output != null && step > startStep)
            lastCheckpoint = SaveCheckpoint(loaded, o, output, step, totalSteps, fingerprint, adapter, optimizer, losses, evaluations, initialValidation);

        var (adapterPath, modelPath, sidePath) = output != null && !cancelled ? SaveTrained(loaded, o.Method, output, adapter) : (null, null, null);

        var result = new TrainingResult
        {
            Method = o.Method.ToString(), Model = loaded.Name, Steps = step, TotalSteps = totalSteps, BatchSize = o.BatchSize,
            SequenceLength = o.SequenceLength, GradientAccumulationSteps = o.GradientAccumulationSteps, LearningRate = o.LearningRate, Seed = o.Seed,
            Losses = losses.ToList(), Evaluations = evaluations.ToList(), InitialValidationLoss = initialValidation,
            FinalValidationLoss = evaluations.Count > 0 && evaluations[^1].Step == step && step > 0 ? evaluations[^1].Loss : null,
            TrainableParameters = trainable.Sum(p => p.parameter.numel()), TotalParameters = model.parameters().Sum(p => p.numel()),
            MillisecondsPerStep = stepTimes.Count == 0 ? 0 : Median(stepTimes), TokensPerSecond = stepTimes.Count == 0 ? 0 : tokensSeen / (stepTimes.Sum() / 1000),
            PeakMemoryMiB = MemoryMeter.PeakMiB, StartMemoryMiB = startMemory, Seconds = clock.Elapsed.TotalSeconds, TrainingTokens = tokensSeen,
            Cancelled = cancelled, ResumedFromStep = startStep, OutputPath = output, AdapterPath = adapterPath, ModelPath = modelPath,
            MetricsPath = metricsPath, CheckpointPath = lastCheckpoint, SideNetworkPath = sidePath,
            GateValues = side?.GateValues(),
        };
        if (output != null) AtomicFile.WriteAllText(Path.Combine(output, "result.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        return result;
    }

    /// <summary>What the optimizer updates: the side network's parameters (named side.*) for Ladder, else the model's that require grad.</summary>
    internal static List<(string name, Parameter parameter)> TrainableOf(LlamaForCausalLM model, SideTuning.LadderSideNetwork? side)
        => (side is null ? model.named_parameters() : side.named_parameters().Select(p => ($"side.{p.name}", p.parameter)))
            .Where(p => p.Item2.requires_grad).Select(p => (name: p.Item1, parameter: p.Item2)).ToList();

    /// <summary>Final hidden states [batch, seq, hidden]: the backbone's, or for Ladder the backbone's plus the side network's.</summary>
    internal static Func<Tensor, Tensor> HiddenStatesOf(LlamaForCausalLM model, SideTuning.LadderSideNetwork? side)
        => side is null ? ids => model.model.Forward(ids) : ids => side.Hidden(model, ids);

    /// <summary>Writes what a finished run trained: the PEFT adapter, the side network or the whole model.</summary>
    internal static (string? Adapter, string? Model, string? Side) SaveTrained(LoadedModel loaded, TrainingMethod method, string output, string? adapter)
    {
        switch (method)
        {
            case TrainingMethod.Lora:
                return (PeftAdapterFormat.Save(loaded.Adapters, adapter!, Path.Combine(output, AdapterFolder), true, loaded.SourcePath).Folder.FullName, null, null);
            case TrainingMethod.Ladder:
                loaded.SideNetwork!.Save(Path.Combine(output, SideNetworkFolder), true);
                return (null, null, Path.Combine(output, SideNetworkFolder));
            default:
                return (null, loaded.SaveHuggingFace(Path.Combine(output, ModelFolder), true).FullName, null);
        }
    }

    internal static double Median(List<double> values) { var s = values.OrderBy(v => v).ToList(); return s[s.Count / 2]; }

    /// <summary>Sets what trains; returns the adapter name for Method Lora. <paramref name="fisherData"/> feeds Fisher pruning.</summary>
    internal static string? PrepareMethod(LoadedModel loaded, TrainingOptions o, TokenStream fisherData, Action<string>? log)
    {
        var set = loaded.Adapters;
        switch (o.Method)
        {
            case TrainingMethod.Lora:
            {
                string? name = o.AdapterName ?? set.ActiveNames.FirstOrDefault();
                if (name is null)
                {
                    name = "default";
                    set.Add(name, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" }, BaseModelNameOrPath = loaded.SourcePath }, o.Seed);
                    log?.Invoke("The model had no adapter; added 'default' (r 8, alpha 16, q_proj and v_proj).");
                }
                if (!set.Contains(name)) throw LoraShellException.NotFound("AdapterNotFound", $"The model has no adapter named '{name}'.", name);
                if (set.MergedNames.Contains(name))
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterMerged", $"Adapter '{name}' is merged into the base weights; unmerge it before training it.", name);
                set.Enable();
                set.SetActive(name);
                set.MarkTrainable(name);
                return name;
            }
            case TrainingMethod.Full:
                if (set.Names.Count > 0)
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "FullWithAdapters",
                        $"Full fine-tuning trains the base weights, but the model holds adapter(s) {string.Join(", ", set.Names)}. Merge or remove them first, or use -Method Lora.");
                foreach (var p in loaded.Model.parameters()) p.requires_grad = true;
                return null;
            case TrainingMethod.Ladder:
            {
                if (set.ActiveNames.Except(set.MergedNames).Any() && !set.Disabled)
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "LadderWithAdapters",
                        "Ladder side-tuning keeps the backbone frozen as it is; merge, disable or remove the active adapters first.");
                foreach (var p in loaded.Model.parameters()) p.requires_grad = false;
                if (loaded.SideNetwork is null)
                {
                    var config = o.Ladder ?? new SideTuning.LadderConfig();
                    manual_seed(o.Seed);
                    var side = new SideTuning.LadderSideNetwork(config, loaded.Model.Config);
                    side.to(loaded.Model.Device);
                    if (config.Init == SideTuning.LadderInit.Magnitude) side.InitFromBackbone(loaded.Model);
                    else if (config.Init == SideTuning.LadderInit.Fisher) side.InitFromBackbone(loaded.Model, FisherImportance(loaded.Model, fisherData, o));
                    loaded.SideNetwork = side;
                    log?.Invoke($"Side network: width {side.SideConfig.HiddenSize}, {side.Layers.Count} blocks, {side.parameters().Sum(p => p.numel()):N0} parameters, init {config.Init}.");
                }
                foreach (var p in loaded.SideNetwork.parameters()) p.requires_grad = true;
                return null;
            }
            default:
                throw LoraShellException.InvalidArgument("MethodNotAvailable", $"Training method {o.Method} is not available.", o.Method);
        }
    }

    internal static void EnsureWritable(string output)
    {
        try
        {
            Directory.CreateDirectory(output);
            string probe = Path.Combine(output, $".write-test-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "OutputPathNotWritable", $"Output folder '{output}' cannot be written: {e.Message}", output);
        }
    }

    /// <summary>
    /// Fisher information of each backbone weight, estimated as Σ (w · ∂L/∂w)² over a few training
    /// batches: the importance used to prune the backbone into the side network's initial weights.
    /// </summary>
    static Func<string, Tensor, Tensor> FisherImportance(LlamaForCausalLM model, TokenStream data, TrainingOptions o)
    {
        var sampler = new BatchSampler(data, o.SequenceLength, o.Seed + 1);
        var named = model.named_parameters().ToList();
        var scores = named.ToDictionary(p => p.name, p => zeros_like(p.parameter, dtype: ScalarType.Float32).DetachFromDisposeScope());
        foreach (var (_, p) in named) p.requires_grad = true;
        try
        {
            for (int b = 0; b < o.FisherBatches; b++)
            {
                using var scope = NewDisposeScope();
                var (inputs, targets) = sampler.Batch((long)b * o.BatchSize, o.BatchSize, model.Device);
                var logits = model.forward(inputs);
                nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), targets.reshape(-1), ignore_index: BatchSampler.IgnoreIndex).backward();
                using (no_grad())
                    foreach (var (name, p) in named)
                        if (p.grad is Tensor g) { scores[name].add_((p.to(ScalarType.Float32) * g.to(ScalarType.Float32)).pow(2)); g.zero_(); }
            }
        }
        finally
        {
            foreach (var (_, p) in named) { p.requires_grad = false; p.grad?.Dispose(); p.grad = null; }
        }
        return (name, _) => scores[name];
    }

    /// <summary>Mean loss over the validation windows (targets marked not-predicted are ignored).</summary>
    public static double Evaluate(LlamaForCausalLM model, BatchSampler validation, TrainingOptions o)
        => Evaluate(model.forward, model, null, validation, o);

    static double Evaluate(Func<Tensor, Tensor> forward, LlamaForCausalLM model, SideTuning.LadderSideNetwork? side, BatchSampler validation, TrainingOptions o)
    {
        bool wasTraining = model.training;
        model.eval();
        side?.eval();
        double sum = 0;
        long count = 0;
        using (no_grad())
        {
            foreach (var (inputs, targets) in validation.Sequential(o.BatchSize, model.Device, o.MaxEvalWindows))
            {
                using var scope = NewDisposeScope();
                using var i = inputs; using var t = targets;
                var logits = forward(i);
                var flat = t.reshape(-1);
                sum += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), flat,
                    ignore_index: BatchSampler.IgnoreIndex, reduction: nn.Reduction.Sum).item<float>();
                count += flat.ne(BatchSampler.IgnoreIndex).sum().item<long>();
            }
        }
        if (wasTraining) { model.train(); side?.train(); }
        return count == 0 ? double.NaN : sum / count;
    }

    static string Fingerprint(LoadedModel loaded, TrainingOptions o, string? adapter)
    {
        var text = new StringBuilder();
        text.Append(loaded.Model.Config.ToJson("any"));
        foreach (var (name, p) in loaded.Model.named_parameters()) text.Append($"{name}:{string.Join("x", p.shape)};");
        text.Append($"|{o.Method}|{o.BatchSize}|{o.SequenceLength}|{o.GradientAccumulationSteps}|{adapter}");
        if (adapter != null) text.Append(loaded.Adapters.ConfigOf(adapter).ToJson());
        if (o.Method == TrainingMethod.Ladder && loaded.SideNetwork is not null) text.Append(loaded.SideNetwork.Config.ToJson());
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32];
    }

    static string SaveCheckpoint(LoadedModel loaded, TrainingOptions o, string output, int step, int totalSteps, string fingerprint, string? adapter,
        AdamW optimizer, List<double> losses, List<EvalRecord> evaluations, double? initialValidation)
    {
        string folder = TrainingCheckpoint.PathFor(output, step);
        var state = new TrainingCheckpoint.State(step, o.Method.ToString(), fingerprint, o.Seed, totalSteps, o.BatchSize, o.SequenceLength,
            o.GradientAccumulationSteps, o.LearningRate, adapter, losses.ToList(), evaluations.ToList(), initialValidation);
        TrainingCheckpoint.Write(folder, state, optimizer, temp =>
        {
            if (o.Method == TrainingMethod.Ladder)
            {
                Directory.CreateDirectory(Path.Combine(temp, SideNetworkFolder));
                loaded.SideNetwork!.WriteInto(Path.Combine(temp, SideNetworkFolder));
            }
            else if (o.Method == TrainingMethod.Lora)
            {
                var tensors = PeftAdapterFormat.StateDict(loaded.Adapters, adapter!);
                Directory.CreateDirectory(Path.Combine(temp, AdapterFolder));
                File.WriteAllText(Path.Combine(temp, AdapterFolder, PeftAdapterFormat.ConfigFile), loaded.Adapters.ConfigOf(adapter!).ToJson());
                SafetensorsWriter.Write(Path.Combine(temp, AdapterFolder, PeftAdapterFormat.WeightsFile), tensors, HuggingFaceWriter.PtMetadata);
            }
            else
            {
                Directory.CreateDirectory(Path.Combine(temp, ModelFolder));
                HuggingFaceWriter.WriteInto(loaded.Model, Path.Combine(temp, ModelFolder));
            }
        });
        return folder;
    }

    static void RestoreWeights(LoadedModel loaded, string checkpoint, TrainingMethod method, string? adapter)
    {
        if (method == TrainingMethod.Ladder)
        {
            var restored = SideTuning.LadderSideNetwork.Load(Path.Combine(checkpoint, SideNetworkFolder), loaded.Model);
            using var _ = no_grad();
            foreach (var (name, t) in loaded.SideNetwork!.state_dict()) t.copy_(restored.state_dict()[name]);
            restored.Dispose();
            return;
        }
        if (method == TrainingMethod.Lora)
        {
            using var file = SafetensorsFile.Open(Path.Combine(checkpoint, AdapterFolder, PeftAdapterFormat.WeightsFile));
            var expected = PeftAdapterFormat.StateDict(loaded.Adapters, adapter!);
            using var _ = no_grad();
            foreach (var (key, tensor) in expected)
            {
                if (!file.Contains(key) || !file[key].Shape.SequenceEqual(tensor.shape))
                    throw LoraShellException.InvalidData("CheckpointMismatch", $"Checkpoint '{checkpoint}' has no tensor '{key}' of shape [{string.Join(", ", tensor.shape)}].", checkpoint);
                using var value = file.ReadTensor(key);
                tensor.copy_(value);
            }
        }
        else
        {
            using var weights = SafetensorsCheckpoint.Open(Path.Combine(checkpoint, ModelFolder));
            var shapes = weights.Names.ToDictionary(n => n, n => weights.Entry(n).Shape);
            StateDictLoader.Load(loaded.Model, checkpoint, shapes, weights.Read, loaded.Model.Config.TieWordEmbeddings ? new HashSet<string> { "lm_head.weight" } : null);
        }
    }

    internal static void AppendMetrics(string? path, object record)
    {
        if (path is null) return;
        File.AppendAllText(path, JsonSerializer.Serialize(record, new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull }) + "\n");
    }

    static void TruncateMetrics(string path, int step)
    {
        if (!File.Exists(path)) return;
        var kept = File.ReadAllLines(path).Where(line =>
        {
            try { using var d = JsonDocument.Parse(line); return d.RootElement.GetProperty("step").GetInt32() <= step; }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException) { return false; }
        });
        AtomicFile.WriteAllText(path, string.Concat(kept.Select(l => l + "\n")));
    }
}
