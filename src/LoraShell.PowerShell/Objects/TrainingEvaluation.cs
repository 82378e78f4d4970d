namespace LoraShell;

/// <summary>One validation pass of a training run (type name LoraShell.TrainingEvaluation): step 0 is before training.</summary>
public sealed class TrainingEvaluation
{
    public int Step { get; init; }
    /// <summary>Mean validation loss (natural-log cross-entropy).</summary>
    public double Loss { get; init; }
    /// <summary>Validation accuracy for classification; null for language modelling.</summary>
    public double? Accuracy { get; init; }
    public override string ToString() => Accuracy is { } a ? $"step {Step}: loss {Loss:F4}, accuracy {a:P1}" : $"step {Step}: loss {Loss:F4}";
}
