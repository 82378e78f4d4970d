using System.Diagnostics;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Tests.Gguf;

/// <summary>
/// The real llama.cpp, as the judge of LoraShell's GGUF files: tests/LlamaCppOracle (LLamaSharp's
/// llama.cpp build) run in its own process, built on first use. ggml and libtorch never share a process.
/// </summary>
public static class LlamaCpp
{
    static readonly object BuildGate = new();
    static string? _dll;

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraShell.sln"))) return dir.FullName;
        throw new InvalidOperationException("LoraShell.sln not found above the test binaries.");
    }

    static string Dll()
    {
        lock (BuildGate)
        {
            if (_dll is not null) return _dll;
            string project = Path.Combine(RepositoryRoot(), "tests", "LlamaCppOracle");
            string dll = Path.Combine(project, "bin", "Release", "net10.0", "LlamaCppOracle.dll");
            // Built once per test run (cheap when up to date), so `dotnet test` alone works too.
            var (code, output, error) = Exec("dotnet", new[] { "build", Path.Combine(project, "LlamaCppOracle.csproj"), "-c", "Release", "-nologo", "-v", "quiet" }, 600);
            if (code != 0 || !File.Exists(dll)) throw new InvalidOperationException($"building the llama.cpp oracle failed:\n{output}\n{error}");
            return _dll = dll;
        }
    }

    /// <summary>Runs one oracle command; its JSON answer, or an exception carrying llama.cpp's error.</summary>
    public static JsonObject Run(params string[] args)
    {
        var (code, output, error) = Exec("dotnet", new[] { Dll() }.Concat(args).ToArray(), 600);
        JsonObject? json = null;
        try { json = JsonNode.Parse(output) as JsonObject; } catch (System.Text.Json.JsonException) { }
        if (code != 0 || json is null || json["error"] is not null)
            throw new LlamaCppException($"llama.cpp oracle '{string.Join(' ', args.Take(3))}' failed ({code}): {json?["error"] ?? output}\n{error}");
        return json;
    }

    /// <summary>Logits [position][vocab] llama.cpp computes for <paramref name="tokens"/> (F32 KV cache), with adapters at their scales.</summary>
    public static float[][] Logits(string model, IReadOnlyList<long> tokens, params (string Path, double Scale)[] loras)
    {
        var args = new List<string> { "logits", "--model", model, "--tokens", string.Join(',', tokens) };
        foreach (var (path, scale) in loras) { args.Add("--lora"); args.Add($"{path}:{scale.ToString(System.Globalization.CultureInfo.InvariantCulture)}"); }
        var json = Run(args.ToArray());
        return json["logits"]!.AsArray().Select(row => row!.AsArray().Select(v => v!.GetValue<float>()).ToArray()).ToArray();
    }

    public static (long[] Tokens, string Text) Greedy(string model, long[] prompt, int max, params long[] stopIds)
    {
        var args = new List<string> { "greedy", "--model", model, "--tokens", string.Join(',', prompt), "--max", max.ToString() };
        if (stopIds.Length > 0) { args.Add("--stop-ids"); args.Add(string.Join(',', stopIds)); }
        var json = Run(args.ToArray());
        return (json["tokens"]!.AsArray().Select(t => t!.GetValue<long>()).ToArray(), json["text"]!.GetValue<string>());
    }

    public static long[] Tokenize(string model, string text, bool addSpecial, bool parseSpecial, string scratchFolder)
    {
        string file = Path.Combine(scratchFolder, $"text-{Guid.NewGuid():N}.txt");
        File.WriteAllText(file, text, new System.Text.UTF8Encoding(false));
        var args = new List<string> { "tokenize", "--model", model, "--text-file", file };
        if (addSpecial) args.Add("--add-special");
        if (parseSpecial) args.Add("--parse-special");
        return Run(args.ToArray())["tokens"]!.AsArray().Select(t => t!.GetValue<long>()).ToArray();
    }

    /// <summary>llama.cpp's own quantizer (llama_model_quantize): Q8_0, Q6_K, Q4_K_M, … and F32 (dequantizing with allow-requantize).</summary>
    public static void Quantize(string input, string output, string type)
    {
        var args = new List<string> { "quantize", "--in", input, "--out", output, "--type", type };
        if (type is "F32" or "F16") args.Add("--allow-requantize");
        Run(args.ToArray());
    }

    public static JsonObject Metadata(string model) => Run("metadata", "--model", model);

    static (int Code, string Output, string Error) Exec(string file, string[] args, int timeoutSeconds)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000)) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{file} {string.Join(' ', args.Take(4))} ran past {timeoutSeconds} s"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}

public sealed class LlamaCppException(string message) : Exception(message);
