using LoraShell.Core.Jobs;

namespace LoraShell;

/// <summary>A training job folder written by Export-LoraTrainingJob (type name LoraShell.TrainingJob).</summary>
public sealed class TrainingJob
{
    internal TrainingJob(TrainingJobResult result, TrainingJobOptions options, string method, double? perGpuGB)
    {
        Path = result.Folder.FullName;
        Files = result.Files.ToArray();
        Model = result.ModelNameOrPath;
        CarriesModel = result.CarriesModel;
        Method = method;
        Strategy = options.Strategy;
        Gpus = options.Gpus;
        Machines = options.Machines;
        EstimatedGBPerGpu = perGpuGB;
        RecordKind = result.Data.Kind;
        TrainRecords = result.Data.TrainRecords;
        ValidationRecords = result.Data.ValidationRecords;
        LaunchCommand = result.LaunchCommand;
    }

    public string Path { get; }
    public string[] Files { get; }
    /// <summary>What the job's from_pretrained loads: a hub id, a folder, or "model" (the copy in the job).</summary>
    public string Model { get; }
    public bool CarriesModel { get; }
    /// <summary>LoRA, QLoRA (a 4-bit base), LoRA over an 8-bit base, or DoRA.</summary>
    public string Method { get; }
    public DistributedStrategy Strategy { get; }
    public int Gpus { get; }
    public int Machines { get; }
    /// <summary>Measure-LoraMemory's estimate of the memory each GPU needs; null when -Gpus was given and no estimate was made.</summary>
    public double? EstimatedGBPerGpu { get; }
    public JobRecordKind RecordKind { get; }
    public int TrainRecords { get; }
    public int ValidationRecords { get; }
    /// <summary>The command that starts the job from its folder.</summary>
    public string LaunchCommand { get; }
}
