using System.Runtime.InteropServices;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Models.Families;
using LoraShell.Core.Tokenizers;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Loads a GGUF model file (llama.cpp's, Ollama's model store, LoraShell's own export) of the families
/// LoraShell implements into the Hugging Face layout: llama.cpp's tensor names mapped back to HF's
/// (<see cref="GgufNames"/>), q/k rows of the llama architecture back to rotate-half order, GPT-2's
/// matrices back to Conv1D [in, out]. Every tensor type LoraShell reads (F32, F16, BF16, Q4_0, Q8_0,
/// the K-quants…) is dequantized a tensor at a time straight into the dtype or quantization asked for.
/// </summary>
public static class GgufLoader
{
    public const string Extension = ".gguf";

    public static (CausalLM Model, ITextTokenizer? Tokenizer) Load(string path, WeightFormat? format = null)
    {
        using var f = GgufFile.Open(path);
        if (f.Metadata.TryGetValue("general.type", out var kind) && kind.Value is "adapter")
            throw LoraShellException.InvalidArgument("GgufIsAnAdapter",
                $"'{f.FilePath}' is a GGUF LoRA adapter (general.type = adapter), not a model; load its base model and apply the adapter in llama.cpp, or import a PEFT adapter folder with Import-LoraAdapter.", f.FilePath);
        var config = GgufConfig.Read(f);
        var tokenizer = GgufTokenizer.Read(f);
        var family = config.Family;
        var map = GgufNames.ModuleMap(config);
        bool conv1d = family.Layout.Storage == ProjectionStorage.Conv1D;
        var expected = family.Tensors(config).ToList();

        // HF name → the GGUF tensor that holds it, checked (names and shapes) before anything is allocated.
        var stored = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        var projections = new HashSet<string>(StringComparer.Ordinal);
        foreach (var spec in expected)
        {
            string gguf = GgufNames.TensorName(map, spec.Name) ?? spec.Name;
            if (f.Contains(gguf)) stored[spec.Name] = f.Tensor(gguf);
            if (conv1d && spec.Shape.Length == 2 && IsProjection(family, spec.Name)) projections.Add(spec.Name);
        }
        var ggufNames = stored.Values.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var extra = f.Tensors.Select(t => t.Name).Where(n => !ggufNames.Contains(n) && n != $"{GgufNames.RopeFrequencies}.weight").ToList();
        if (extra.Count > 0)
            throw LoraShellException.InvalidData("WeightsDoNotMatchModel",
                $"'{f.FilePath}' holds tensors a {family.ModelType} model of this configuration does not have: {string.Join(", ", extra.Take(8))}{(extra.Count > 8 ? $", … ({extra.Count - 8} more)" : "")}.", f.FilePath);
        var shapes = stored.ToDictionary(p => p.Key, p => projections.Contains(p.Key) ? new[] { p.Value.Shape[1], p.Value.Shape[0] } : p.Value.Shape);
        StateDictLoader.Check(expected, shapes, f.FilePath);

        var model = new CausalLM(config, (format ?? WeightFormat.Default) with { Initialize = false });
        try
        {
            StateDictLoader.Load(model, f.FilePath, shapes, name =>
            {
                var info = stored[name];
                var t = ReadTensor(f, info);
                if (projections.Contains(name)) t = t.t().contiguous();
                if (family.Gguf.InterleavedRope)
                {
                    if (info.Name.Contains(".attn_q.", StringComparison.Ordinal)) t = RopeRowOrder.ToRotateHalf(t, config.NumAttentionHeads);
                    else if (info.Name.Contains(".attn_k.", StringComparison.Ordinal)) t = RopeRowOrder.ToRotateHalf(t, config.NumKeyValueHeads);
                }
                return t;
            });
        }
        catch { model.Dispose(); throw; }
        return (model, tokenizer);
    }

    static bool IsProjection(ModelFamily family, string hfName)
    {
        var l = family.Layout;
        return l.AttentionProjections.Concat(l.FeedForwardProjections).Any(p => hfName.EndsWith($".{p.Name}.weight", StringComparison.Ordinal));
    }

    /// <summary>One tensor as float32 in PyTorch order, dequantized a block of rows at a time into its own memory.</summary>
    static Tensor ReadTensor(GgufFile f, GgufTensorInfo info)
    {
        var t = empty(info.Shape, ScalarType.Float32);
        long rowLength = info.Dims[0], rows = info.ElementCount / rowLength;
        var flat = t.view(rows, rowLength);
        // Spans address at most 2^31 bytes: a block of rows at a time.
        long rowsPerChunk = Math.Max(1, (1L << 28) / rowLength);
        for (long row = 0; row < rows; row += rowsPerChunk)
        {
            long n = Math.Min(rowsPerChunk, rows - row);
            using var chunk = flat.narrow(0, row, n);
            f.ReadFloats(info, row, n, MemoryMarshal.Cast<byte, float>(chunk.bytes));
        }
        return t;
    }
}
