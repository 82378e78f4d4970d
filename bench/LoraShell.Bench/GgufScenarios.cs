using System.Diagnostics;
using System.Text.Json.Nodes;
using LoraShell.Core.Inference;
using LoraShell.Core.IO;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>
/// GGUF at 1B scale: exporting the TinyLlama-shaped model as F16 and Q8_0, importing those files back,
/// and generating from the same model in LoraShell and in llama.cpp (tests/LlamaCppOracle) as the peer.
/// </summary>
static partial class Scenarios
{
    static string GgufFolder() => Path.Combine(BenchModels.RepoRoot(), "out", "bench-models", "gguf");

    static LoadedModel TinyLlamaWithTokenizer(bool quick)
    {
        var model = LoadedModel.Load(new ModelLoadOptions { Path = BenchModels.TinyLlamaFolder(quick) }).Model;
        // TinyLlama's 32,000-token vocabulary stands in as stories260K's 512 tokens plus unused ones: the
        // file is llama.cpp-loadable and its size is the real model's.
        var tokenizer = Core.Tokenizers.Llama2cTokenizer.Load(Path.Combine(BenchModels.SharedRoot(), "models", "stories260K", "tok512.bin"));
        return new LoadedModel(model, tokenizer, "tinyllama-1.1b-shape", "bench");
    }

    static string GgufPath(string type, bool quick) => Path.Combine(GgufFolder(), $"tinyllama{(quick ? "-quick" : "")}-{type.ToLowerInvariant()}.gguf");

    /// <summary>Export time and the peak over the loaded model: a tensor is converted at a time, so the peak should be one tensor, not the file.</summary>
    static BenchResult GgufExport(string type, bool quick)
    {
        using var m = TinyLlamaWithTokenizer(quick);
        NativeMemory.ReleaseManagedGarbage();
        NativeMemory.Trim();
        double before = MemoryMeter.CurrentMiB;
        MemoryMeter.ResetPeak();
        string path = GgufPath(type, quick);
        var clock = Stopwatch.StartNew();
        var result = m.SaveGguf(path, Enum.Parse<GgmlType>(type));
        double seconds = clock.Elapsed.TotalSeconds;
        long largest = m.Model.Config.Family.Tensors(m.Model.Config).Max(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        var r = new BenchResult { Scenario = $"gguf-export-tinyllama1b-{type.ToLowerInvariant()}" };
        r.Metrics["seconds"] = seconds;
        r.Metrics["file_mib"] = result.File.Length / 1048576.0;
        r.Metrics["mb_per_s"] = result.File.Length / 1e6 / seconds;
        r.Metrics["peak_over_model_mib"] = MemoryMeter.PeakMiB - before;
        r.Metrics["largest_tensor_f32_mib"] = largest * 4 / 1048576.0;
        r.Settings["run"] = $"{m.Model.Config.ParameterCount:N0} parameters in float32 memory -> {type} GGUF ({result.TensorCount} tensors)";
        return r;
    }

    /// <summary>Import time and peak against the model it builds (float32), from the files the export rows wrote.</summary>
    static BenchResult GgufImport(string type, bool quick)
    {
        string path = GgufPath(type, quick);
        if (!File.Exists(path)) GgufExport(type, quick);
        using (var warm = ones(64, 64)) warm.matmul(warm).Dispose(); // libtorch's own start-up is not the import's
        NativeMemory.ReleaseManagedGarbage();
        NativeMemory.Trim();
        double before = MemoryMeter.CurrentMiB;
        MemoryMeter.ResetPeak();
        var clock = Stopwatch.StartNew();
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = path });
        double seconds = clock.Elapsed.TotalSeconds;
        var r = new BenchResult { Scenario = $"gguf-import-tinyllama1b-{type.ToLowerInvariant()}" };
        r.Metrics["seconds"] = seconds;
        r.Metrics["file_mib"] = new FileInfo(path).Length / 1048576.0;
        r.Metrics["model_mib"] = m.Model.WeightBytes / 1048576.0;
        r.Metrics["peak_over_baseline_mib"] = MemoryMeter.PeakMiB - before;
        r.Metrics["peak_over_model"] = (MemoryMeter.PeakMiB - before) / (m.Model.WeightBytes / 1048576.0);
        r.Settings["run"] = $"{type} GGUF -> float32 model ({m.Model.Config.ParameterCount:N0} parameters), dequantized a tensor at a time";
        return r;
    }

    /// <summary>
    /// Greedy generation from BOS, batch 1 with a KV cache: LoraShell on the float32 model against llama.cpp
    /// on the same weights as an F32 GGUF (and on the F16 and Q8_0 files, llama.cpp's usual formats). llama.cpp's
    /// rate is per generated token after loading: (time for N+1 tokens − time for 1) / N, each a fresh process.
    /// </summary>
    static BenchResult GgufGenerate(bool quick)
    {
        int tokens = quick ? 8 : 64;
        using var m = TinyLlamaWithTokenizer(quick);
        string f32 = GgufPath("F32", quick);
        if (!File.Exists(f32)) m.SaveGguf(f32, GgmlType.F32);
        var options = new GenerationOptions { MaxTokens = tokens, Temperature = 0 };
        TextGenerator.GenerateTokens(m.Model, new[] { 1 }, options with { MaxTokens = 4 }, Array.Empty<int>());
        var clock = Stopwatch.StartNew();
        var (generated, _) = TextGenerator.GenerateTokens(m.Model, new[] { 1 }, options, Array.Empty<int>());
        double ours = generated.Count / clock.Elapsed.TotalSeconds;

        var r = new BenchResult { Scenario = "gguf-generate-tinyllama1b-vs-llamacpp" };
        r.Metrics["lorashell_f32_tokens_per_s"] = ours;
        foreach (var type in new[] { "F32", "F16", "Q8_0" })
        {
            string file = GgufPath(type, quick);
            if (!File.Exists(file)) m.SaveGguf(file, Enum.Parse<GgmlType>(type));
            double one = LlamaCppSeconds(file, 1), many = LlamaCppSeconds(file, tokens + 1);
            r.Metrics[$"llamacpp_{type.ToLowerInvariant()}_tokens_per_s"] = tokens / Math.Max(1e-9, many - one);
        }
        r.Metrics["lorashell_over_llamacpp_f32"] = ours / r.Metrics["llamacpp_f32_tokens_per_s"];
        r.Settings["run"] = $"{tokens} greedy tokens from BOS, batch 1, KV cache; {m.Model.Config.ParameterCount:N0} parameters; llama.cpp b10221 via LLamaSharp 0.30.0 (CPU, 2 threads), F32 KV cache";
        return r;
    }

    static double LlamaCppSeconds(string model, int tokens)
    {
        string dll = LlamaCppOracle();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dll, "greedy", "--model", model, "--tokens", "1", "--max", tokens.ToString(), "--stop-ids", "-1" }) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        double seconds = clock.Elapsed.TotalSeconds;
        var json = JsonNode.Parse(output) as JsonObject;
        if (p.ExitCode != 0 || json?["tokens"] is not JsonArray generated || generated.Count != tokens)
            throw new InvalidOperationException($"llama.cpp greedy on {model} failed: {output}");
        return seconds;
    }

    static string LlamaCppOracle()
    {
        string project = Path.Combine(BenchModels.RepoRoot(), "tests", "LlamaCppOracle");
        string dll = Path.Combine(project, "bin", "Release", "net10.0", "LlamaCppOracle.dll");
        using var build = Process.Start("dotnet", new[] { "build", project, "-c", "Release", "-nologo", "-v", "quiet" })!;
        build.WaitForExit();
        if (build.ExitCode != 0 || !File.Exists(dll)) throw new InvalidOperationException("building tests/LlamaCppOracle failed");
        return dll;
    }
}
