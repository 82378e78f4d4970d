using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Training;

namespace LoraShell.Core.Experiments;

/// <summary>
/// The experiment protocol of DESIGN.md §5, in one place: base model stories260K, target domain Tiny
/// Shakespeare (last 10% held out), the same data, steps, seed and sequence length for every method.
/// Notebooks, their dotnet-run twins and the benchmarks all build on this.
/// </summary>
public sealed record ExperimentSetup
{
    /// <summary>The folder holding models/stories260K and data/ (../shared in this repository).</summary>
    public required string SharedFolder { get; init; }
    public int Steps { get; init; } = 60;
    public int BatchSize { get; init; } = 8;
    public int SequenceLength { get; init; } = 128;
    public long Seed { get; init; } = 1337;
    public double LoraLearningRate { get; init; } = 3e-3;
    public double FullLearningRate { get; init; } = 1e-3;
    /// <summary>Validation windows per evaluation (0: the whole held-out 10%).</summary>
    public int MaxEvalWindows { get; init; } = 64;

    public string ModelPath => Path.Combine(SharedFolder, "models", "stories260K", "stories260K.bin");
    public string TokenizerPath => Path.Combine(SharedFolder, "models", "stories260K", "tok512.bin");
    public string DataPath => Path.Combine(SharedFolder, "data", "tinyshakespeare", "input.txt");

    /// <summary>Finds ../shared from a start folder upwards (or LORASHELL_SHARED).</summary>
    public static string FindShared(string? start = null)
    {
        string? env = Environment.GetEnvironmentVariable("LORASHELL_SHARED");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return Path.GetFullPath(env);
        for (var dir = new DirectoryInfo(start ?? Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "shared", "models", "stories260K"))) return Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(dir.FullName, "models", "stories260K")) && Directory.Exists(Path.Combine(dir.FullName, "data"))) return dir.FullName;
        }
        throw LoraShellException.NotFound("SharedFolderNotFound", "Could not find the shared/ folder with models/stories260K and data/; set LORASHELL_SHARED.");
    }

    public LoadedModel LoadBase() => LoadedModel.Load(new ModelLoadOptions { Path = ModelPath, TokenizerPath = TokenizerPath });

    public TrainingOptions Training(TrainingMethod method) => new()
    {
        Method = method, DataPaths = new[] { DataPath }, MaxSteps = Steps, BatchSize = BatchSize, SequenceLength = SequenceLength,
        LearningRate = method == TrainingMethod.Full ? FullLearningRate : LoraLearningRate, WarmupSteps = Math.Max(0, Steps / 10),
        Seed = Seed, MaxEvalWindows = MaxEvalWindows, EvalEvery = Math.Max(1, Steps / 4),
    };
}
