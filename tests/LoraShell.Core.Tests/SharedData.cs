using LoraShell.Core.Models;
using LoraShell.Core.Session;

namespace LoraShell.Core.Tests;

/// <summary>Locates ../shared (models and data sets read in place, never copied into the repo).</summary>
public static class SharedData
{
    static readonly Lazy<string> Root = new(() => LoraShell.Core.Experiments.ExperimentSetup.FindShared(AppContext.BaseDirectory));

    public static string Path_(params string[] parts) => Path.Combine(new[] { Root.Value }.Concat(parts).ToArray());
    public static string Stories260K => Path_("models", "stories260K", "stories260K.bin");
    public static string Tok512 => Path_("models", "stories260K", "tok512.bin");
    public static string Greedy200 => Path_("models", "stories260K", "greedy200.txt");
    public static string TinyShakespeare => Path_("data", "tinyshakespeare", "input.txt");

    static readonly Lazy<LoadedModel> SharedModel = new(() => LoadStories());

    /// <summary>One read-only stories260K shared by tests that do not modify it.</summary>
    public static LoadedModel Stories => SharedModel.Value;

    public static LoadedModel LoadStories(ModelDType dtype = ModelDType.Float32)
        => LoadedModel.Load(new ModelLoadOptions { Path = Stories260K, TokenizerPath = Tok512, DType = dtype });
}

/// <summary>Files of the repository the tests run from (scripts under tests/reference, the solution).</summary>
public static class RepositoryFiles
{
    /// <summary>The file at <paramref name="relative"/> below the first folder above the test binaries that has it.</summary>
    public static string Find(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, relative);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"{relative} not found above the test binaries ({AppContext.BaseDirectory}).");
    }
}

/// <summary>The Python scripts under tests/reference, run with Debian's python3 (or LORASHELL_PYTHON).</summary>
public static class ReferenceScripts
{
    public static string Python => Environment.GetEnvironmentVariable("LORASHELL_PYTHON") ?? "/usr/bin/python3";

    /// <summary>Runs tests/reference/<paramref name="script"/> with <paramref name="args"/>; both streams are read to the end together, so neither can fill up and stall it.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string script, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(RepositoryFiles.Find(Path.Combine("tests", "reference", script)));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr);
    }
}

/// <summary>A temporary folder deleted at the end of a test.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder() => Directory.CreateDirectory(Path);
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lorashell-tests", Guid.NewGuid().ToString("N"));
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
}
