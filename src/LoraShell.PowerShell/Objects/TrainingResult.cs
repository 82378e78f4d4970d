namespace LoraShell;

/// <summary>Output of Start-LoraTraining (type name LoraShell.TrainingResult).</summary>
public sealed class TrainingResult
{
    internal TrainingResult(Core.Training.TrainingResult r, LoraModel? trained = null)
    {
        Core = r;
        Trained = trained;
    }

    internal Core.Training.TrainingResult Core { get; }
    /// <summary>The model that was trained (null for a result read back from result.json).</summary>
    internal LoraModel? Trained { get; }

    /// <summary>
    /// A training result stands for the model it trained where a cmdlet takes a model, so
    /// `$r | Save-LoraAdapter -Path …` saves what the run trained even without -OutputPath.
    /// </summary>
    public static implicit operator LoraModel(TrainingResult result) => result.Trained
        ?? throw new InvalidCastException($"This training result of '{result.Model}' was read back from a file and holds no model.");
    public Core.Training.TrainingMethod Method => Enum.Parse<Core.Training.TrainingMethod>(Core.Method);
    public string Model => Core.Model;
    public Core.Training.TrainingTask Task => Enum.Parse<Core.Training.TrainingTask>(Core.Task);
    public int Steps => Core.Steps;
    public int TotalSteps => Core.TotalSteps;
    public double? InitialValidationLoss => Core.InitialValidationLoss;
    public double? FinalValidationLoss => Core.FinalValidationLoss;
    public double? FinalTrainingLoss => Core.Losses.Count > 0 ? Core.Losses[^1] : null;
    public double[] Losses => Core.Losses.ToArray();
    public TrainingEvaluation[] Evaluations => Core.Evaluations.Select(e => new TrainingEvaluation { Step = e.Step, Loss = e.Loss, Accuracy = e.Accuracy }).ToArray();
    /// <summary>Classification only: validation accuracy before and after training, and the class labels.</summary>
    public double? InitialValidationAccuracy => Core.InitialValidationAccuracy;
    public double? FinalValidationAccuracy => Core.FinalValidationAccuracy;
    public string[]? Labels => Core.Labels?.ToArray();
    public string? ClassifierPath => Core.ClassifierPath;
    public long TrainableParameters => Core.TrainableParameters;
    public long TotalParameters => Core.TotalParameters;
    public double MillisecondsPerStep => Core.MillisecondsPerStep;
    public double TokensPerSecond => Core.TokensPerSecond;
    public double PeakMemoryMiB => Core.PeakMemoryMiB;
    public double Seconds => Core.Seconds;
    public int BatchSize => Core.BatchSize;
    public int SequenceLength => Core.SequenceLength;
    public double LearningRate => Core.LearningRate;
    /// <summary>LoRA+: the multiple of the learning rate lora_B learned at, when the run used it.</summary>
    public double? LoraPlusRatio => Core.LoraPlusRatio;
    public long Seed => Core.Seed;
    public bool Cancelled => Core.Cancelled;
    public int ResumedFromStep => Core.ResumedFromStep;
    public string? OutputPath => Core.OutputPath;
    public string? AdapterPath => Core.AdapterPath;
    public string? ModelPath => Core.ModelPath;
    public string? MetricsPath => Core.MetricsPath;
    public string? CheckpointPath => Core.CheckpointPath;
    public string? SideNetworkPath => Core.SideNetworkPath;
    public double[]? GateValues => Core.GateValues;
}
