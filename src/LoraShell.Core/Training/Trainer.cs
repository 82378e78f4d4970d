using LoraShell.Core.Models;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// One training loop for every method and task (nanoGPT's shape): seeded batches, AdamW, linear warmup
/// then cosine decay, gradient accumulation and clipping, validation every N steps, metrics.jsonl as it
/// goes, atomic checkpoints that resume to the same loss curve, and a clean stop on cancellation. What
/// the method trains comes from its <see cref="Tuners.Tuner"/>, the data and loss from the task's
/// <see cref="TrainingObjective"/>; <see cref="TrainingRun"/> holds the loop.
/// </summary>
public static class Trainer
{
    public const string MetricsFile = "metrics.jsonl";
    public const string ResultFile = "result.json";
    public const string AdapterFolder = "adapter";
    public const string ModelFolder = "model";
    public const string SideNetworkFolder = "side-network";

    public static TrainingResult Run(ITrainingSubject subject, TrainingOptions o, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancel = default, RunLog? log = null, Action<TrainingActivity>? activity = null)
    {
        o.Validate();
        using var run = TrainingRun.Start(subject, o, log, activity);
        try
        {
            run.Train(progress, cancel);
            return run.Finish();
        }
        catch
        {
            run.Abandon();
            throw;
        }
    }

    /// <summary>Mean loss of <paramref name="model"/> over the validation windows (targets marked not-predicted are ignored).</summary>
    public static double Evaluate(CausalLM model, BatchSampler validation, TrainingOptions o)
    {
        bool wasTraining = model.training;
        model.eval();
        try { return LanguageModelingObjective.MeanLoss(model.Forward, model, validation, o); }
        finally { if (wasTraining) model.train(); }
    }
}
