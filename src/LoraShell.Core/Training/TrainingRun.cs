using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Training.Tuners;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// One training run, from setup to result: <see cref="Start"/> loads the data and prepares the method,
/// <see cref="Train"/> is the step loop, <see cref="Finish"/> saves what was trained and reports it.
/// Checkpoints hold the weights the method trains, the optimizer and RNG state and the run's history,
/// so a resumed run continues the same loss curve.
/// </summary>
internal sealed class TrainingRun : IDisposable
{
    readonly ITrainingSubject _subject;
    readonly TrainingOptions _o;
    readonly TrainingOutput? _folder;
    readonly string? _output;
    readonly string? _metricsPath;
    readonly TrainingObjective _objective;
    readonly Tuner _tuner;
    readonly IReadOnlyList<(string name, TorchSharp.Modules.Parameter parameter)> _trainable;
    readonly AdamW _optimizer;
    readonly LearningRateSchedule _schedule;
    readonly string _fingerprint;
    readonly int _totalSteps;

    readonly List<double> _losses = new();
    readonly List<EvalRecord> _evaluations = new();
    readonly List<double> _stepMilliseconds = new();
    readonly List<long> _stepTokens = new();
    Action<TrainingActivity>? _activity;
    readonly Stopwatch _clock = new();
    int _startStep, _step;
    long _tokensSeen;
    double _startMemory;
    bool _cancelled;
    string? _lastCheckpoint;
    PendingCheckpoint? _pending;

    /// <summary>
    /// A checkpoint due at the end of a step, written only once the next step's loss shows its weights are
    /// good: a finite loss, finite parameters. Until then only what cannot be recomputed is kept: the
    /// random generator's state at the end of its step and how much history belongs to it.
    /// </summary>
    sealed record PendingCheckpoint(int Step, Tensor RngState, int Losses) : IDisposable
    {
        public void Dispose() => RngState.Dispose();
    }

    TrainingRun(ITrainingSubject subject, TrainingOptions o, TrainingOutput? folder, TrainingObjective objective, Tuner tuner)
    {
        _subject = subject;
        _o = o;
        _folder = folder;
        _output = folder?.Path;
        _metricsPath = _output is null ? null : Path.Combine(_output, Trainer.MetricsFile);
        _objective = objective;
        _tuner = tuner;
        _trainable = tuner.Trainable.Concat(objective.Parameters).ToList();
        if (_trainable.Count == 0) throw new LoraShellException(LoraErrorKind.InvalidOperation, "NothingToTrain", "No parameter is trainable for this method.");
        int rowsPerStep = o.BatchSize * o.GradientAccumulationSteps;
        _totalSteps = o.MaxSteps ?? Math.Max(1, (int)Math.Ceiling(o.Epochs!.Value * objective.EpochSize / rowsPerStep));
        _schedule = new LearningRateSchedule(o.LearningRate, o.WarmupSteps, _totalSteps, o.MinLearningRateRatio);
        _fingerprint = Fingerprint();
        _optimizer = new AdamW(_trainable, o.Beta1, o.Beta2, o.AdamEpsilon, o.WeightDecay, LoraPlus(o.LoraPlusRatio));
    }

    /// <summary>Reads the data, prepares what the method trains and binds the task to it.</summary>
    public static TrainingRun Start(ITrainingSubject subject, TrainingOptions o, RunLog? log, Action<TrainingActivity>? activity = null)
    {
        var tokenizer = subject.RequireTokenizer();
        var encoderDecoder = subject.Network as Models.T5.T5ForConditionalGeneration;
        if (encoderDecoder is not null) RefuseForEncoderDecoder(o);
        else if (o.Task == TrainingTask.TextToText)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "TextToTextNeedsEncoderDecoder",
                $"-Task TextToText trains an encoder-decoder (T5) model; '{subject.Name}' is decoder-only. It learns {{\"input\", \"target\"}} pairs as prompt and completion with -Task LanguageModeling.", o.Task);
        else CheckSequenceLength(subject.Model.Config, o, log);
        var folder = o.OutputPath is null ? null : TrainingOutput.Prepare(o.OutputPath, o.Resume, o.Overwrite);
        string? output = folder?.Path;
        TrainingObjective? objective = null;
        TrainingRun? run = null;
        try
        {
            objective = encoderDecoder is not null ? new TextToTextObjective(o, tokenizer, encoderDecoder.Config, log)
                : o.IsClassification ? new ClassificationObjective(o, tokenizer)
                : new LanguageModelingObjective(o, tokenizer, output, log, activity);
            NativeMemory.ReleaseManagedGarbage();
            var tuner = Tuner.For(o.Method, subject);
            if (tuner is T5LadderTuner ladder && objective is TextToTextObjective pairs)
                ladder.FisherLoss = i => pairs.BackboneLoss(encoderDecoder!, i, o.BatchSize);
            tuner.Prepare(o, () => objective.FisherData, log);
            objective.Bind(subject.Network, tuner, o.Seed, log);
            run = new TrainingRun(subject, o, folder, objective, tuner) { _activity = activity };
            if (o.Resume) run.Resume(log); else run.Begin();
            return run;
        }
        catch
        {
            folder?.Abandon(hasCheckpoint: false); // puts the folder back, then lets go of its lock
            if (run is not null) run.Dispose(); else objective?.Dispose();
            throw;
        }
    }

    /// <summary>What a T5 run cannot do yet, refused before anything is read or written.</summary>
    static void RefuseForEncoderDecoder(TrainingOptions o)
    {
        if (o.GradientCheckpointing)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5",
                "-GradientCheckpointing recomputes decoder-only layers; T5's encoder and decoder blocks do not recompute yet. Train without it (or with a smaller -BatchSize).", o.GradientCheckpointing);
        if (o.Task == TrainingTask.Classification)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5",
                "A T5 model classifies as text, as in the T5 paper: give .jsonl lines such as {\"input\": \"sst2 sentence: a gripping film\", \"target\": \"positive\"} (-Task TextToText); validation then reports accuracy by generation.", o.Task);
    }

    static void CheckSequenceLength(Models.ModelConfig config, TrainingOptions o, RunLog? log)
    {
        if (o.SequenceLength > config.MaxPositionEmbeddings)
        {
            // Learned positions end at the last one; rotary ones go on, past what the model was trained on.
            if (config.RotaryDim == 0)
                throw LoraShellException.InvalidArgument("SequenceLengthTooLong",
                    $"-SequenceLength {o.SequenceLength} is longer than the model's {config.MaxPositionEmbeddings} learned positions; choose at most {config.MaxPositionEmbeddings}.", o.SequenceLength);
            log?.Warn($"-SequenceLength {o.SequenceLength} is longer than the model's context (max_position_embeddings {config.MaxPositionEmbeddings}); positions past it were not seen in pre-training{(config.RopeScaling?.Type == Models.RopeScaling.Dynamic ? " (dynamic NTK scaling stretches them)" : "")}. Choose -SequenceLength {config.MaxPositionEmbeddings} or less unless you mean to extend the context.");
        }
    }

    void Begin()
    {
        manual_seed(_o.Seed);
        if (_metricsPath != null) File.WriteAllText(_metricsPath, "");
        if (!_objective.HasValidation) return;
        var initial = Evaluate(0);
        _evaluations.Add(initial);
        AppendMetrics(new { step = 0, val_loss = initial.Loss, val_accuracy = initial.Accuracy });
    }

    void Resume(RunLog? log)
    {
        string checkpoint = TrainingCheckpoint.Latest(_output!) ?? throw LoraShellException.NotFound("NoCheckpoint",
            $"-Resume found no checkpoint in '{Path.Combine(_output!, TrainingCheckpoint.Folder)}'. Train with -CheckpointEvery (or stop with Ctrl+C) to create one.", _output);
        var state = TrainingCheckpoint.ReadState(checkpoint);
        if (state.Fingerprint != _fingerprint || state.Method != _o.Method.ToString())
            throw LoraShellException.InvalidData("CheckpointMismatch",
                $"Checkpoint '{checkpoint}' was written for another model or setup (method {state.Method}, batch {state.BatchSize}, sequence {state.SequenceLength}, adapter {state.AdapterName ?? "-"}); " +
                $"it cannot resume this run (method {_o.Method}, task {_objective.Task}, batch {_o.BatchSize}, sequence {_o.SequenceLength}, model '{_subject.Name}').", checkpoint);
        _tuner.RestoreCheckpoint(checkpoint);
        _objective.Restore(checkpoint);
        TrainingCheckpoint.RestoreOptimizer(checkpoint, _optimizer, state.Step);
        _startStep = state.Step;
        _losses.AddRange(state.Losses);
        _evaluations.AddRange(state.Evaluations);
        if (_metricsPath != null) TruncateMetrics(_metricsPath, _startStep);
        log?.Info($"Resumed from '{checkpoint}' at step {_startStep}.");
    }

    /// <summary>The step loop: batch, forward and backward per micro-batch, clip, update, evaluate, report, checkpoint.</summary>
    public void Train(IProgress<TrainingProgress>? progress, CancellationToken cancel)
    {
        if (_o.TrimMemoryEachStep) { NativeMemory.MapLargeAllocations(); NativeMemory.Trim(); }
        MemoryMeter.ResetPeak();
        _startMemory = MemoryMeter.CurrentMiB;
        _clock.Start();
        SetTraining(true);
        try
        {
            for (_step = _startStep; _step < _totalSteps; _step++)
            {
                if (cancel.IsCancellationRequested) { _cancelled = true; break; }
                var stepClock = Stopwatch.StartNew();
                double lr = _schedule.At(_step);
                var (loss, tokens) = ForwardBackward();
                CheckFinite(loss);
                WritePendingCheckpoint(); // its weights just scored a finite loss
                if (_o.MaxGradNorm > 0) using (NewDisposeScope()) nn.utils.clip_grad_norm_(_optimizer.Parameters, _o.MaxGradNorm); // grad handles die here
                _optimizer.Step(lr);
                _optimizer.ZeroGrad();
                if (_o.TrimMemoryEachStep) NativeMemory.Trim(); // RSS then tracks live memory (costs page faults)

                _losses.Add(loss);
                _tokensSeen += tokens;
                double seconds = stepClock.Elapsed.TotalSeconds;
                _stepMilliseconds.Add(seconds * 1000);
                _stepTokens.Add(tokens);
                bool last = _step + 1 == _totalSteps;
                var evaluation = EvaluateIfDue(last);
                Report(progress, loss, lr, tokens / seconds, evaluation);
                if (_output != null && _o.CheckpointEvery > 0 && (_step + 1) % _o.CheckpointEvery == 0 && !last)
                    _pending = new PendingCheckpoint(_step + 1, get_rng_state(), _losses.Count);
            }
        }
        finally
        {
            SetTraining(false);
            _pending?.Dispose();
            _pending = null;
        }
        // Stopped between steps: the weights are those of the last finished step, whose loss was finite.
        if (_cancelled && _output != null && _step > _startStep)
        {
            using var rng = get_rng_state();
            if (ParametersFinite()) _lastCheckpoint = SaveCheckpoint(_step, rng, _losses.Count);
        }
    }

    void WritePendingCheckpoint()
    {
        if (_pending is not { } p) return;
        _pending = null;
        using (p)
            if (ParametersFinite()) _lastCheckpoint = SaveCheckpoint(p.Step, p.RngState, p.Losses);
    }

    bool ParametersFinite()
    {
        using var scope = NewDisposeScope();
        return _trainable.All(p => p.parameter.isfinite().all().item<bool>());
    }

    /// <summary>One optimizer step's gradients: the micro-batches' mean loss and the tokens they read.</summary>
    (double Loss, long Tokens) ForwardBackward()
    {
        double lossSum = 0;
        long tokens = 0;
        for (int micro = 0; micro < _o.GradientAccumulationSteps; micro++)
        {
            using var scope = NewDisposeScope();
            long firstDraw = ((long)_step * _o.GradientAccumulationSteps + micro) * _o.BatchSize;
            if (_objective.Step(firstDraw, _o.BatchSize, 1.0 / _o.GradientAccumulationSteps) is not var (loss, read)) continue;
            lossSum += loss;
            tokens += read;
        }
        return (lossSum / _o.GradientAccumulationSteps, tokens);
    }

    void CheckFinite(double loss)
    {
        if (double.IsFinite(loss)) return;
        _pending?.Dispose(); // the weights it would save are the ones that just scored NaN
        _pending = null;
        throw new LoraShellException(LoraErrorKind.InvalidOperation, "NonFiniteLoss",
            $"The training loss became {loss} at step {_step + 1}; training stopped before the update. " +
            (_lastCheckpoint != null
                ? $"Last good checkpoint (finite weights, finite loss): '{_lastCheckpoint}'; resume from it with a lower -LearningRate."
                : "No checkpoint had finite weights and a finite loss. Lower -LearningRate or add -WarmupSteps."), _step + 1);
    }

    EvalRecord? EvaluateIfDue(bool last)
    {
        if (!_objective.HasValidation || !(last || (_o.EvalEvery > 0 && (_step + 1) % _o.EvalEvery == 0))) return null;
        var evaluation = Evaluate(_step + 1);
        _evaluations.Add(evaluation);
        return evaluation;
    }

    EvalRecord Evaluate(int atStep)
    {
        SetTraining(false);
        string what = (atStep == 0 ? "before training" : $"at step {atStep}") + $" ({_objective.EvaluationSize})";
        _activity?.Invoke(new TrainingActivity($"Evaluating {what}", 0));
        try { return _objective.Evaluate(atStep, f => _activity?.Invoke(new TrainingActivity($"Evaluating {what}", f))); }
        finally { SetTraining(true); }
    }

    void SetTraining(bool training)
    {
        _tuner.SetTraining(training);
        _tuner.SetGradientCheckpointing(training && _o.GradientCheckpointing);
        _objective.SetTraining(training);
    }

    void Report(IProgress<TrainingProgress>? progress, double loss, double lr, double tokensPerSecond, EvalRecord? evaluation)
    {
        AppendMetrics(new
        {
            step = _step + 1, loss, lr, tokens_per_s = tokensPerSecond, elapsed_s = _clock.Elapsed.TotalSeconds,
            memory_mib = MemoryMeter.CurrentMiB, val_loss = evaluation?.Loss, val_accuracy = evaluation?.Accuracy,
        });
        // Shown rates and times use the last 20 steps, leaving out this process's first step (it pays for
        // allocation and warm-up, so a single-step rate jumped from tens to thousands of tokens/s).
        int recent = Math.Min(20, _stepMilliseconds.Count > 1 ? _stepMilliseconds.Count - 1 : 1);
        double recentMs = _stepMilliseconds.TakeLast(recent).Sum();
        double shownRate = recentMs > 0 ? _stepTokens.TakeLast(recent).Sum() / (recentMs / 1000) : tokensPerSecond;
        var remaining = TimeSpan.FromSeconds(recentMs / recent / 1000 * (_totalSteps - _step - 1));
        progress?.Report(new TrainingProgress(_step + 1, _totalSteps, loss, lr, shownRate, _clock.Elapsed, remaining, evaluation?.Loss));
    }

    string SaveCheckpoint(int step, Tensor rngState, int losses)
    {
        string folder = TrainingCheckpoint.PathFor(_output!, step);
        var evaluations = _evaluations.Where(e => e.Step <= step).ToList();
        var state = new TrainingCheckpoint.State(step, _o.Method.ToString(), _fingerprint, _o.Seed, _totalSteps, _o.BatchSize, _o.SequenceLength,
            _o.GradientAccumulationSteps, _o.LearningRate, _tuner.AdapterName, _losses.Take(losses).ToList(), evaluations, evaluations.FirstOrDefault(e => e.Step == 0)?.Loss);
        TrainingCheckpoint.Write(folder, state, _optimizer, rngState, temp =>
        {
            _tuner.WriteCheckpoint(temp);
            _objective.Save(temp);
        });
        _folder?.Keep();
        TrainingCheckpoint.Prune(_output!, _o.KeepCheckpoints);
        return folder;
    }

    /// <summary>The run failed: leave the output folder as <see cref="TrainingOutput.Abandon"/> says.</summary>
    public void Abandon() => _folder?.Abandon(hasCheckpoint: _lastCheckpoint is not null);

    /// <summary>Saves what was trained (unless the run was cancelled) and describes the run.</summary>
    public TrainingResult Finish()
    {
        var artifacts = new TrainedArtifacts();
        string? classifierPath = null;
        if (_output != null && !_cancelled)
        {
            artifacts = _tuner.SaveFinal(_output);
            classifierPath = _objective.Save(_output);
        }

        var initialEval = _evaluations.FirstOrDefault(e => e.Step == 0);
        var finalEval = _evaluations.Count > 0 && _evaluations[^1].Step == _step && _step > 0 ? _evaluations[^1] : null;
        var model = _subject.Network.Module;
        var result = new TrainingResult
        {
            Method = _o.Method.ToString(), Model = _subject.Name, Task = _objective.Task.ToString(), Steps = _step, TotalSteps = _totalSteps, BatchSize = _o.BatchSize,
            SequenceLength = _o.SequenceLength, GradientAccumulationSteps = _o.GradientAccumulationSteps, LearningRate = _o.LearningRate, LoraPlusRatio = _o.LoraPlusRatio, Seed = _o.Seed,
            Losses = _losses.ToList(), Evaluations = _evaluations.ToList(),
            InitialValidationLoss = initialEval?.Loss, FinalValidationLoss = finalEval?.Loss,
            Labels = _objective.Labels, InitialValidationAccuracy = initialEval?.Accuracy, FinalValidationAccuracy = finalEval?.Accuracy,
            TrainableParameters = _trainable.Sum(p => p.parameter.numel()),
            TotalParameters = model.parameters().Sum(p => p.numel()) + _objective.Parameters.Sum(p => p.parameter.numel()),
            MillisecondsPerStep = _stepMilliseconds.Count == 0 ? 0 : Median(_stepMilliseconds),
            TokensPerSecond = _stepMilliseconds.Count == 0 ? 0 : _tokensSeen / (_stepMilliseconds.Sum() / 1000),
            PeakMemoryMiB = MemoryMeter.PeakMiB, StartMemoryMiB = _startMemory, Seconds = _clock.Elapsed.TotalSeconds, TrainingTokens = _tokensSeen,
            Cancelled = _cancelled, ResumedFromStep = _startStep, OutputPath = _output, AdapterPath = artifacts.AdapterPath, ModelPath = artifacts.ModelPath,
            MetricsPath = _metricsPath, CheckpointPath = _lastCheckpoint, SideNetworkPath = artifacts.SideNetworkPath, ClassifierPath = classifierPath,
            GateValues = _tuner.GateValues,
        };
        if (_output != null) AtomicFile.WriteAllText(Path.Combine(_output, Trainer.ResultFile), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        _folder?.Keep();
        return result;
    }

    static double Median(List<double> values) { var s = values.OrderBy(v => v).ToList(); return s[s.Count / 2]; }

    /// <summary>
    /// LoRA+'s learning-rate groups as PEFT's create_loraplus_optimizer forms them: lora_B and every
    /// one-dimensional parameter (biases, DoRA magnitudes) at ratio × lr, the rest (lora_A, modules to save) at lr.
    /// </summary>
    static Func<string, TorchSharp.Modules.Parameter, double>? LoraPlus(double? ratio)
        => ratio is double r ? (name, p) => name.Contains($".{IO.PeftKeys.LoraB}.", StringComparison.Ordinal) || p.dim() < 2 ? r : 1.0 : null;

    string Fingerprint()
    {
        var text = new StringBuilder();
        text.Append(_subject.Network.ConfigFingerprint);
        foreach (var (name, p) in _subject.Network.Module.named_parameters()) text.Append($"{name}:{string.Join("x", p.shape)};");
        text.Append($"|{_o.Method}|{_o.BatchSize}|{_o.SequenceLength}|{_o.GradientAccumulationSteps}|{_tuner.AdapterName}");
        // Language modelling adds nothing, so checkpoints written before tasks existed still resume.
        if (_objective.Task != TrainingTask.LanguageModeling) text.Append($"|{_objective.Fingerprint}");
        text.Append(_objective.BatchingFingerprint);
        text.Append(_tuner.FingerprintExtra);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32];
    }

    void AppendMetrics(object record)
    {
        if (_metricsPath is null) return;
        File.AppendAllText(_metricsPath, JsonSerializer.Serialize(record, new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull }) + "\n");
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

    public void Dispose()
    {
        _optimizer.Dispose();
        _objective.Dispose();
        _folder?.Dispose(); // the run folder's lock, last
    }
}
