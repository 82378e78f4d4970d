using LoraShell.Core.Models;
using LoraShell.Core.Training.Tuners;
using TorchSharp.Modules;

namespace LoraShell.Core.Training;

/// <summary>
/// What a task brings to the one training loop in <see cref="Trainer"/>: its data, the loss of a
/// micro-batch (forward and backward), its validation metric, and whatever it trains and saves beside
/// the method's parameters (a classification head). The loop owns the rest: optimizer, schedule,
/// accumulation, clipping, timing, progress, metrics, checkpoints, resume and the result.
/// </summary>
internal abstract class TrainingObjective : IDisposable
{
    public abstract TrainingTask Task { get; }

    /// <summary>Training examples (token windows or sentences) in one epoch.</summary>
    public abstract long EpochSize { get; }

    public abstract bool HasValidation { get; }

    /// <summary>How much of the validation data an evaluation scores ("32 of 1,094 windows"), for the progress line.</summary>
    public abstract string EvaluationSize { get; }

    /// <summary>Tokens for Fisher-information pruning of a Ladder side network (built on each call).</summary>
    public abstract TokenStream FisherData { get; }

    /// <summary>Class labels, for classification.</summary>
    public virtual IReadOnlyList<string>? Labels => null;

    /// <summary>Parameters the task trains beside the method's, named as the optimizer state stores them.</summary>
    public virtual IReadOnlyList<(string name, Parameter parameter)> Parameters => Array.Empty<(string, Parameter)>();

    /// <summary>Text that tells this task's checkpoints from another task's (its label set, for instance).</summary>
    public virtual string Fingerprint => Task.ToString();

    /// <summary>What changes the windows a run draws beyond the loop settings (empty where nothing does, so older checkpoints still resume).</summary>
    public virtual string BatchingFingerprint => "";

    /// <summary>Connects the task to the model once the method is prepared (for Ladder, once the side network exists).</summary>
    public abstract void Bind(IAdaptableModel model, Tuner tuner, long seed, RunLog? log);

    /// <summary>
    /// Forward and backward of the micro-batch made of draws [firstDraw, firstDraw + batchSize), its loss
    /// scaled by <paramref name="scale"/>. Returns the micro-batch's mean loss and the tokens it read, or
    /// null when it has nothing to predict.
    /// </summary>
    public abstract (double Loss, long Tokens)? Step(long firstDraw, int batchSize, double scale);

    /// <summary>
    /// Validation loss (and accuracy, for classification) of the model as it is now; <paramref name="done"/>
    /// hears the fraction of the validation set scored so far.
    /// </summary>
    public abstract EvalRecord Evaluate(int step, Action<double>? done = null);

    public virtual void SetTraining(bool training) { }

    /// <summary>Writes what the task trains beside the method's weights into <paramref name="folder"/>; returns its path, or null.</summary>
    public virtual string? Save(string folder) => null;

    /// <summary>Reads back what <see cref="Save"/> wrote into a checkpoint folder.</summary>
    public virtual void Restore(string folder) { }

    public virtual void Dispose() { }
}
