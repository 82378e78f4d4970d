namespace LoraShell.Core.Training;

/// <summary>A validation measurement during training.</summary>
public sealed record EvalRecord(int Step, double Loss, double? Accuracy = null);

/// <summary>Progress of a running training, reported once per optimizer step.</summary>
/// <summary>
/// What a run is doing between steps (reading and tokenizing data, evaluating), so a caller can show it:
/// <paramref name="Fraction"/> in [0, 1], or negative when the amount of work is unknown.
/// </summary>
public sealed record TrainingActivity(string Status, double Fraction);

public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double LearningRate, double TokensPerSecond, TimeSpan Elapsed, TimeSpan Remaining, double? ValidationLoss);

/// <summary>What a training run did and produced.</summary>
public sealed record TrainingResult
{
    public required string Method { get; init; }
    public required string Model { get; init; }
    public string Task { get; init; } = nameof(TrainingTask.LanguageModeling);
    public int Steps { get; init; }
    public int TotalSteps { get; init; }
    public int BatchSize { get; init; }
    public int SequenceLength { get; init; }
    public int GradientAccumulationSteps { get; init; }
    public double LearningRate { get; init; }
    /// <summary>LoRA+'s multiple of the learning rate for lora_B, when the run used it.</summary>
    public double? LoraPlusRatio { get; init; }
    public long Seed { get; init; }
    public IReadOnlyList<double> Losses { get; init; } = Array.Empty<double>();
    public IReadOnlyList<EvalRecord> Evaluations { get; init; } = Array.Empty<EvalRecord>();
    public double? InitialValidationLoss { get; init; }
    public double? FinalValidationLoss { get; init; }
    public long TrainableParameters { get; init; }
    public long TotalParameters { get; init; }
    public double MillisecondsPerStep { get; init; }
    public double TokensPerSecond { get; init; }
    /// <summary>Peak resident memory of the process during training (CPU), MiB.</summary>
    public double PeakMemoryMiB { get; init; }
    public double StartMemoryMiB { get; init; }
    public double Seconds { get; init; }
    public long TrainingTokens { get; init; }
    public bool Cancelled { get; init; }
    public int ResumedFromStep { get; init; }
    public string? OutputPath { get; init; }
    public string? AdapterPath { get; init; }
    public string? ModelPath { get; init; }
    public string? MetricsPath { get; init; }
    public string? CheckpointPath { get; init; }
    public string? SideNetworkPath { get; init; }
    /// <summary>Classification: the class labels (index order) and validation accuracy before and after training.</summary>
    public IReadOnlyList<string>? Labels { get; init; }
    public double? InitialValidationAccuracy { get; init; }
    public double? FinalValidationAccuracy { get; init; }
    /// <summary>Classification: the folder holding the trained head (score.safetensors, labels.json).</summary>
    public string? ClassifierPath { get; init; }
    /// <summary>Ladder gate values μ_i after training.</summary>
    public double[]? GateValues { get; init; }
}
