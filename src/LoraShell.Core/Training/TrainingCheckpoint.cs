using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.IO;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// A resumable checkpoint folder, <c>checkpoints/step-NNNNNN</c>: the trained weights (PEFT adapter
/// or HF model), <c>optimizer.safetensors</c> (AdamW moments and the RNG state) and
/// <c>trainer_state.json</c> (step, settings, model fingerprint, losses so far). Written atomically.
/// </summary>
public static class TrainingCheckpoint
{
    public const string Folder = "checkpoints";
    public const string StateFile = "trainer_state.json";
    public const string OptimizerFile = "optimizer.safetensors";

    public static string PathFor(string output, int step) => Path.Combine(output, Folder, $"step-{step:D6}");

    /// <summary>The checkpoint with the highest step, or null.</summary>
    public static string? Latest(string output)
    {
        string root = Path.Combine(output, Folder);
        if (!Directory.Exists(root)) return null;
        return Directory.GetDirectories(root, "step-*")
            .Where(d => File.Exists(Path.Combine(d, StateFile)))
            .OrderBy(d => d, StringComparer.Ordinal).LastOrDefault();
    }

    public sealed record State(int Step, string Method, string Fingerprint, long Seed, int TotalSteps, int BatchSize, int SequenceLength,
        int Accumulation, double LearningRate, string? AdapterName, List<double> Losses, List<EvalRecord> Evaluations, double? InitialValidationLoss);

    /// <param name="rngState">the random generator's state at the end of the checkpoint's step, so a resume draws what the run drew</param>
    public static void Write(string folder, State state, AdamW optimizer, Tensor rngState, Action<string> writeWeights)
    {
        AtomicFile.WriteDirectory(folder, overwrite: true, temp =>
        {
            writeWeights(temp);
            var tensors = optimizer.State().Append(KeyValuePair.Create("__rng_state__", rngState)).ToList();
            SafetensorsWriter.Write(Path.Combine(temp, OptimizerFile), tensors, new Dictionary<string, string> { ["optimizer_steps"] = optimizer.StepCount.ToString() });
            File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state, new JsonSerializerOptions { WriteIndented = true }));
        });
    }

    public static State ReadState(string folder)
    {
        string path = Path.Combine(folder, StateFile);
        try { return JsonSerializer.Deserialize<State>(File.ReadAllText(path)) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw LoraShellException.InvalidData("InvalidCheckpoint", $"'{path}' is not a LoraShell trainer state ({e.Message}).", path); }
    }

    public static void RestoreOptimizer(string folder, AdamW optimizer, int steps)
    {
        using var file = SafetensorsFile.Open(Path.Combine(folder, OptimizerFile));
        optimizer.LoadState(file.ReadTensor, steps);
        using var rng = file.ReadTensor("__rng_state__");
        set_rng_state(rng);
    }

    /// <summary>
    /// Deletes all but the newest <paramref name="keep"/> checkpoints (0 keeps all). The newest is the one
    /// -Resume reads, so it always stays.
    /// </summary>
    public static void Prune(string output, int keep)
    {
        if (keep <= 0) return;
        string root = Path.Combine(output, Folder);
        if (!Directory.Exists(root)) return;
        var all = Directory.GetDirectories(root, "step-*").Where(d => File.Exists(Path.Combine(d, StateFile)))
            .OrderBy(d => d, StringComparer.Ordinal).ToList();
        foreach (var old in all.Take(Math.Max(0, all.Count - Math.Max(1, keep))))
            try { Directory.Delete(old, recursive: true); } catch (IOException) { }
    }
}
