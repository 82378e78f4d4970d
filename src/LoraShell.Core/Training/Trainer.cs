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
/// One training loop for every method and task (nanoGPT's shape): seeded batches, AdamW, linear warmup
/// then cosine decay, gradient accumulation and clipping, validation every N steps, metrics.jsonl as it
/// goes, atomic checkpoints that resume to the same loss curve, and a clean stop on cancellation. What
/// the method trains comes from <see cref="TrainingMethods"/>, the data and loss from the task's
/// <see cref="TrainingObjective"/>.
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
        var tokenizer = loaded.RequireTokenizer();
        var model = loaded.Model;
        string? output = o.OutputPath is null ? null : Path.GetFullPath(o.OutputPath);
        if (output != null) EnsureWritable(output);

        using TrainingObjective objective = o.IsClassification
            ? new ClassificationObjective(o, tokenizer)
            : new LanguageModelingObjective(o, tokenizer, output);
        NativeMemory.ReleaseManagedGarbage();
        string? adapter = TrainingMethods.Prepare(loaded, o, () => objective.FisherData, log);
        var side = o.Method == TrainingMethod.Ladder ? loaded.SideNetwork : null;
        objective.Bind(model, side, o.Seed, log);
        var trainable = TrainingMethods.TrainableOf(model, side).Concat(objective.Parameters).ToList();
        if (trainable.Count == 0) throw new LoraShellException(LoraErrorKind.InvalidOperation, "NothingToTrain", "No parameter is trainable for this method.");

        int rowsPerStep = o.BatchSize * o.GradientAccumulationSteps;
        int totalSteps = o.MaxSteps ?? Math.Max(1, (int)Math.Ceiling(o.Epochs!.Value * objective.EpochSize / rowsPerStep));
        var schedule = new LearningRateSchedule(o.LearningRate, o.WarmupSteps, totalSteps, o.MinLearningRateRatio);
        string fingerprint = Fingerprint(loaded, o, adapter, objective);

        using var optimizer = new AdamW(trainable.Select(p => (p.name, p.parameter)), o.Beta1, o.Beta2, o.AdamEpsilon, o.WeightDecay);
        var losses = new List<double>();
        var evaluations = new List<EvalRecord>();
        int startStep = 0;
        string? metricsPath = output is null ? null : Path.Combine(output, MetricsFile);

        if (o.Resume)
        {
            string checkpoint = TrainingCheckpoint.Latest(output!) ?? throw LoraShellException.NotFound("NoCheckpoint",
                $"-Resume found no checkpoint in '{Path.Combine(output!, TrainingCheckpoint.Folder)}'. Train with -CheckpointEvery (or stop with Ctrl+C) to create one.", output);
            var state = TrainingCheckpoint.ReadState(checkpoint);
            if (state.Fingerprint != fingerprint || state.Method != o.Method.ToString())
                throw LoraShellException.InvalidData("CheckpointMismatch",
                    $"Checkpoint '{checkpoint}' was written for another model or setup (method {state.Method}, batch {state.BatchSize}, sequence {state.SequenceLength}, adapter {state.AdapterName ?? "-"}); it cannot resume this run (method {o.Method}, task {objective.Task}, batch {o.BatchSize}, sequence {o.SequenceLength}, model '{loaded.Name}').", checkpoint);
            TrainingMethods.RestoreWeights(loaded, checkpoint, o.Method, adapter);
            objective.Restore(checkpoint);
            TrainingCheckpoint.RestoreOptimizer(checkpoint, optimizer, state.Step);
            startStep = state.Step;
            losses.AddRange(state.Losses);
            evaluations.AddRange(state.Evaluations);
            if (metricsPath != null) TruncateMetrics(metricsPath, startStep);
            log?.Invoke($"Resumed from '{checkpoint}' at step {startStep}.");
        }
        else
        {
            manual_seed(o.Seed);
            if (metricsPath != null) File.WriteAllText(metricsPath, "");
        }

        void SetTraining(bool training)
        {
            if (training) { model.train(); side?.train(); } else { model.eval(); side?.eval(); }
            objective.SetTraining(training);
        }
        EvalRecord Evaluate(int atStep)
        {
            SetTraining(false);
            try { return objective.Evaluate(atStep); }
            finally { SetTraining(true); }
        }

        SetTraining(true);
        if (!o.Resume && objective.HasValidation)
        {
            var initial = Evaluate(0);
            evaluations.Add(initial);
            AppendMetrics(metricsPath, new { step = 0, val_loss = initial.Loss, val_accuracy = initial.Accuracy });
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
        try
        {
            for (; step < totalSteps; step++)
            {
                if (cancel.IsCancellationRequested) { cancelled = true; break; }
                var stepClock = Stopwatch.StartNew();
                double lr = schedule.At(step);
                double lossSum = 0;
                long stepTokens = 0;
                for (int micro = 0; micro < o.GradientAccumulationSteps; micro++)
                {
                    using var scope = NewDisposeScope();
                    long firstDraw = ((long)step * o.GradientAccumulationSteps + micro) * o.BatchSize;
                    if (objective.Step(firstDraw, o.BatchSize, 1.0 / o.GradientAccumulationSteps) is not var (loss, tokens)) continue;
                    lossSum += loss;
                    stepTokens += tokens;
                }
                tokensSeen += stepTokens;
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

                EvalRecord? evaluation = null;
                bool last = step + 1 == totalSteps;
                if (objective.HasValidation && (last || (o.EvalEvery > 0 && (step + 1) % o.EvalEvery == 0)))
                {
                    evaluation = Evaluate(step + 1);
                    evaluations.Add(evaluation);
                }
                double tokensPerSecond = stepTokens / seconds;
                AppendMetrics(metricsPath, new
                {
                    step = step + 1, loss = stepLoss, lr, tokens_per_s = tokensPerSecond, elapsed_s = clock.Elapsed.TotalSeconds,
                    memory_mib = MemoryMeter.CurrentMiB, val_loss = evaluation?.Loss, val_accuracy = evaluation?.Accuracy,
                });
                var remaining = TimeSpan.FromSeconds(stepTimes.TakeLast(20).Average() / 1000 * (totalSteps - step - 1));
                progress?.Report(new TrainingProgress(step + 1, totalSteps, stepLoss, lr, tokensPerSecond, clock.Elapsed, remaining, evaluation?.Loss));

                if (output != null && o.CheckpointEvery > 0 && (step + 1) % o.CheckpointEvery == 0 && !last)
                    lastCheckpoint = SaveCheckpoint(loaded, o, objective, output, step + 1, totalSteps, fingerprint, adapter, optimizer, losses, evaluations);
            }
        }
        finally { SetTraining(false); }

        if (cancelled && output != null && step > startStep)
            lastCheckpoint = SaveCheckpoint(loaded, o, objective, output, step, totalSteps, fingerprint, adapter, optimizer, losses, evaluations);

        string? adapterPath = null, modelPath = null, sidePath = null, classifierPath = null;
        if (output != null && !cancelled)
        {
            (adapterPath, modelPath, sidePath) = TrainingMethods.SaveTrained(loaded, o.Method, output, adapter);
            classifierPath = objective.Save(output);
        }

        var initialEval = evaluations.FirstOrDefault(e => e.Step == 0);
        var finalEval = evaluations.Count > 0 && evaluations[^1].Step == step && step > 0 ? evaluations[^1] : null;
        var result = new TrainingResult
        {
            Method = o.Method.ToString(), Model = loaded.Name, Task = objective.Task.ToString(), Steps = step, TotalSteps = totalSteps, BatchSize = o.BatchSize,
            SequenceLength = o.SequenceLength, GradientAccumulationSteps = o.GradientAccumulationSteps, LearningRate = o.LearningRate, Seed = o.Seed,
            Losses = losses.ToList(), Evaluations = evaluations.ToList(),
            InitialValidationLoss = initialEval?.Loss, FinalValidationLoss = finalEval?.Loss,
            Labels = objective.Labels, InitialValidationAccuracy = initialEval?.Accuracy, FinalValidationAccuracy = finalEval?.Accuracy,
            TrainableParameters = trainable.Sum(p => p.parameter.numel()),
            TotalParameters = model.parameters().Sum(p => p.numel()) + objective.Parameters.Sum(p => p.parameter.numel()),
            MillisecondsPerStep = stepTimes.Count == 0 ? 0 : Median(stepTimes), TokensPerSecond = stepTimes.Count == 0 ? 0 : tokensSeen / (stepTimes.Sum() / 1000),
            PeakMemoryMiB = MemoryMeter.PeakMiB, StartMemoryMiB = startMemory, Seconds = clock.Elapsed.TotalSeconds, TrainingTokens = tokensSeen,
            Cancelled = cancelled, ResumedFromStep = startStep, OutputPath = output, AdapterPath = adapterPath, ModelPath = modelPath,
            MetricsPath = metricsPath, CheckpointPath = lastCheckpoint, SideNetworkPath = sidePath, ClassifierPath = classifierPath,
            GateValues = side?.GateValues(),
        };
        if (output != null) AtomicFile.WriteAllText(Path.Combine(output, "result.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        return result;
    }

    internal static double Median(List<double> values) { var s = values.OrderBy(v => v).ToList(); return s[s.Count / 2]; }

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

    /// <summary>Mean loss over the validation windows (targets marked not-predicted are ignored).</summary>
    public static double Evaluate(LlamaForCausalLM model, BatchSampler validation, TrainingOptions o)
    {
        bool wasTraining = model.training;
        model.eval();
        try { return LanguageModelingObjective.MeanLoss(model.forward, model, validation, o); }
        finally { if (wasTraining) model.train(); }
    }

    static string Fingerprint(LoadedModel loaded, TrainingOptions o, string? adapter, TrainingObjective objective)
    {
        var text = new StringBuilder();
        text.Append(loaded.Model.Config.ToJson("any"));
        foreach (var (name, p) in loaded.Model.named_parameters()) text.Append($"{name}:{string.Join("x", p.shape)};");
        text.Append($"|{o.Method}|{o.BatchSize}|{o.SequenceLength}|{o.GradientAccumulationSteps}|{adapter}");
        // Language modelling adds nothing, so checkpoints written before tasks existed still resume.
        if (objective.Task != TrainingTask.LanguageModeling) text.Append($"|{objective.Fingerprint}");
        if (adapter != null) text.Append(loaded.Adapters.ConfigOf(adapter).ToJson());
        if (o.Method == TrainingMethod.Ladder && loaded.SideNetwork is not null) text.Append(loaded.SideNetwork.Config.ToJson());
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32];
    }

    static string SaveCheckpoint(LoadedModel loaded, TrainingOptions o, TrainingObjective objective, string output, int step, int totalSteps,
        string fingerprint, string? adapter, AdamW optimizer, List<double> losses, List<EvalRecord> evaluations)
    {
        string folder = TrainingCheckpoint.PathFor(output, step);
        var state = new TrainingCheckpoint.State(step, o.Method.ToString(), fingerprint, o.Seed, totalSteps, o.BatchSize, o.SequenceLength,
            o.GradientAccumulationSteps, o.LearningRate, adapter, losses.ToList(), evaluations.ToList(), evaluations.FirstOrDefault(e => e.Step == 0)?.Loss);
        TrainingCheckpoint.Write(folder, state, optimizer, temp =>
        {
            TrainingMethods.WriteWeights(loaded, o.Method, adapter, temp);
            objective.Save(temp);
        });
        return folder;
    }

    static void AppendMetrics(string? path, object record)
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
