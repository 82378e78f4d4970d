using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Tests.Families;

/// <summary>
/// Runs tests/reference/hf_reference.py, an independent float64 forward written in plain PyTorch from
/// transformers' modeling code and PEFT's LoRA layer (Debian's python3-torch; no transformers needed).
/// The test command installs python3-torch; without it these tests fail and say how to get it.
/// </summary>
public static class PythonReference
{
    public sealed record Job(string Model, string? Adapter = null, bool Merge = false);
    public sealed record Result(double[,,] Logits, double Loss);

    static string Python => Environment.GetEnvironmentVariable("LORASHELL_PYTHON") ?? "/usr/bin/python3";

    static string Script => RepositoryFiles.Find(Path.Combine("tests", "reference", "hf_reference.py"));

    /// <summary>Runs every job in one Python process and returns their logits and losses, in order.</summary>
    public static List<Result> Run(IReadOnlyList<Job> jobs, long[][] ids, string scratch)
    {
        var list = new JsonArray();
        for (int i = 0; i < jobs.Count; i++)
            list.Add(new JsonObject
            {
                ["model"] = jobs[i].Model, ["adapter"] = jobs[i].Adapter, ["merge"] = jobs[i].Merge,
                ["ids"] = JsonSerializer.SerializeToNode(ids), ["out"] = Path.Combine(scratch, $"reference-{i}.json"),
            });
        string jobsPath = Path.Combine(scratch, "jobs.json");
        File.WriteAllText(jobsPath, list.ToJsonString());

        var start = new ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Script);
        start.ArgumentList.Add("--jobs");
        start.ArgumentList.Add(jobsPath);
        Process process;
        try { process = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"The PyTorch reference needs {Python} with torch (Debian: apt-get install python3-torch libopenblas0-pthread; tests/run.sh installs it): {e.Message}");
        }
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            if (stderr.Contains("No module named 'torch'"))
                throw new InvalidOperationException($"{Python} has no torch module; install Debian's python3-torch and libopenblas0-pthread (tests/run.sh does).");
            throw new InvalidOperationException($"The PyTorch reference failed (exit {process.ExitCode}):\n{stderr}");
        }
        return Enumerable.Range(0, jobs.Count).Select(i => Read(Path.Combine(scratch, $"reference-{i}.json"))).ToList();
    }

    /// <summary>
    /// Has the reference write a random adapter for <paramref name="model"/> as PEFT's save_pretrained lays it
    /// out (nonzero B; with <paramref name="dora"/>, magnitudes of ‖W + s·B·A‖ times U[0.8, 1.2]).
    /// </summary>
    public static void WriteAdapter(string model, string output, IEnumerable<string> targets, int rank, double alpha, bool dora, int seed, IEnumerable<string>? modulesToSave = null,
        IEnumerable<int>? trainableTokens = null)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { Script, "--write-adapter", output, "--model", model, "--targets", string.Join(",", targets),
                     "--rank", rank.ToString(), "--alpha", alpha.ToString(System.Globalization.CultureInfo.InvariantCulture), "--seed", seed.ToString() })
            start.ArgumentList.Add(arg);
        if (dora) start.ArgumentList.Add("--dora");
        if (modulesToSave is not null) { start.ArgumentList.Add("--modules-to-save"); start.ArgumentList.Add(string.Join(",", modulesToSave)); }
        if (trainableTokens is not null) { start.ArgumentList.Add("--trainable-tokens"); start.ArgumentList.Add(string.Join(",", trainableTokens)); }
        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"The PyTorch reference failed to write an adapter (exit {process.ExitCode}):\n{stderr}");
    }

    /// <summary>Has the reference combine adapter folders as PEFT's add_weighted_adapter (v0.20.0) does, into <paramref name="output"/>.</summary>
    public static void Combine(string model, string output, IEnumerable<string> adapters, IEnumerable<double> weights, string combinationType,
        double? density = null, int? svdRank = null, double? svdClamp = null, string majoritySign = "total")
    {
        string F(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var args = new List<string> { Script, "--combine", output, "--model", model, "--adapters", string.Join(",", adapters),
            "--weights", string.Join(",", weights.Select(F)), "--combination-type", combinationType, "--majority-sign-method", majoritySign };
        if (density is double d) args.AddRange(new[] { "--density", F(d) });
        if (svdRank is int r) args.AddRange(new[] { "--svd-rank", r.ToString() });
        if (svdClamp is double c) args.AddRange(new[] { "--svd-clamp", F(c) });
        var start = new ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"The PyTorch reference failed to combine adapters (exit {process.ExitCode}):\n{stderr}");
    }

    static Result Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var rows = doc.RootElement.GetProperty("logits");
        int b = rows.GetArrayLength(), t = rows[0].GetArrayLength(), v = rows[0][0].GetArrayLength();
        var logits = new double[b, t, v];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
                for (int k = 0; k < v; k++) logits[i, j, k] = rows[i][j][k].GetDouble();
        return new Result(logits, doc.RootElement.GetProperty("loss").GetDouble());
    }
}
