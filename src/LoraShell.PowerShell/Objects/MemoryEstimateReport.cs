namespace LoraShell;

/// <summary>Output of Measure-LoraMemory (type name LoraShell.MemoryEstimateReport); sizes in GB (10⁹ bytes).</summary>
public sealed class MemoryEstimateReport
{
    public required string Model { get; init; }
    public required Core.Training.TrainingMethod Method { get; init; }
    public required Core.Memory.TrainingPrecision Precision { get; init; }
    /// <summary>How the frozen decoder projections are stored: None, Int8, Nf4 (Nf4+DQ with double quantization).</summary>
    public string Quantization { get; init; } = "None";
    public long Parameters { get; init; }
    public long TrainableParameters { get; init; }
    public int BatchSize { get; init; }
    public int SequenceLength { get; init; }
    public bool ActivationCheckpointing { get; init; }
    public double WeightsGB { get; init; }
    public double GradientsGB { get; init; }
    public double OptimizerGB { get; init; }
    public double ActivationsGB { get; init; }
    /// <summary>Weights + gradients + optimizer states + one micro-batch's activations, on one device.</summary>
    public double TotalGB { get; init; }
    public double GpuMemoryGB { get; init; }
    /// <summary>Fewest GPUs that hold it (states sharded, activations per GPU); null if one micro-batch does not fit a GPU.</summary>
    public int? Gpus { get; init; }
    public double? PerGpuGB { get; init; }
    public string Notes { get; init; } = "";

    internal static MemoryEstimateReport From(Core.Memory.MemoryEstimate e) => new()
    {
        Model = e.Model, Method = e.Method, Precision = e.Precision,
        Quantization = e.Quantization.ToString() + (e.DoubleQuant ? "+DQ" : ""), Parameters = e.Parameters,
        TrainableParameters = e.TrainableParameters, BatchSize = e.BatchSize, SequenceLength = e.SequenceLength,
        ActivationCheckpointing = e.ActivationCheckpointing,
        WeightsGB = e.WeightBytes / Core.Memory.MemoryEstimate.GB, GradientsGB = e.GradientBytes / Core.Memory.MemoryEstimate.GB,
        OptimizerGB = e.OptimizerBytes / Core.Memory.MemoryEstimate.GB, ActivationsGB = e.ActivationBytes / Core.Memory.MemoryEstimate.GB,
        TotalGB = e.TotalBytes / Core.Memory.MemoryEstimate.GB, GpuMemoryGB = e.GpuMemoryGB, Gpus = e.Gpus, PerGpuGB = e.PerGpuGB, Notes = e.Notes,
    };
}
