using LoraShell.Core.IO;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>Saves a model as an HF folder (<c>config.json</c> + <c>model.safetensors</c>), atomically.</summary>
public static class HuggingFaceWriter
{

    /// <param name="extraFiles">files copied into the folder as they are (e.g. the tokenizer)</param>
    public static DirectoryInfo Save(CausalLM model, string folder, bool overwrite, IEnumerable<string>? extraFiles = null)
        => AtomicFile.WriteDirectory(folder, overwrite, temp => WriteInto(model, temp, extraFiles));

    public static void WriteInto(CausalLM model, string folder, IEnumerable<string>? extraFiles = null)
    {
        File.WriteAllText(Path.Combine(folder, HuggingFaceLoader.ConfigFileName), model.Config.ToJson(TorchDTypeName(model.DType)));
        using var scope = NewDisposeScope(); // the dequantized weights of a quantized model die here
        var tensors = HuggingFaceStateDict(model).OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
        SafetensorsWriter.Write(Path.Combine(folder, SafetensorsCheckpoint.SingleFileName), tensors, SafetensorsHeader.PyTorchMetadata);
        foreach (var file in extraFiles ?? Enumerable.Empty<string>())
        {
            // Copy the bytes, not the source's permissions: the output is the user's to change or delete.
            string target = Path.Combine(folder, Path.GetFileName(file));
            File.WriteAllBytes(target, File.ReadAllBytes(file));
        }
    }

    /// <summary>
    /// The model's weights under plain HF names: a LoRA-wrapped layer contributes its base weight
    /// (with whatever adapters are merged into it) as <c>PATH.weight</c>; adapter factors are left out.
    /// A quantized projection contributes its dequantized weight in the model's dtype and the file layout
    /// (GPT-2's Conv1D: [in, out]), so the folder is an ordinary float checkpoint.
    /// </summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> HuggingFaceStateDict(CausalLM model)
        => TensorSources(model).Select(p => KeyValuePair.Create(p.Key, p.Value()));

    /// <summary>
    /// The same tensors as <see cref="HuggingFaceStateDict"/>, each produced only when asked for: a dense
    /// weight is the parameter itself, a quantized one is dequantized then. Writers that convert a tensor
    /// at a time (GGUF) so never hold a quantized model dense.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, Func<Tensor>>> TensorSources(CausalLM model)
    {
        // A quantized projection is written from its weight as it computes now (dequantized, or merged and
        // dense) in the file's layout; a merged one's dense [out, in] parameter is left out of the plain
        // state dict, where it would be written without GPT-2's transposition.
        var quantized = model.named_modules()
            .Where(m => m.module is Blocks.QuantizedProjection)
            .Select(m => (Path: m.name.Replace("." + IO.PeftKeys.BaseLayer, ""), Layer: (Blocks.QuantizedProjection)m.module))
            .ToList();
        var quantizedWeights = quantized.Select(m => $"{m.Path}.weight").ToHashSet(StringComparer.Ordinal);
        var dense = model.state_dict()
            .Where(p => !IO.PeftKeys.IsAdapterStateName(p.Key))
            .Select(p => KeyValuePair.Create(IO.PeftKeys.WithoutBaseLayer(p.Key), (Func<Tensor>)(() => p.Value)))
            .Where(p => !quantizedWeights.Contains(p.Key));
        var written = quantized.Select(m => KeyValuePair.Create($"{m.Path}.weight",
            (Func<Tensor>)(() => m.Layer.FileTransposed ? m.Layer.Dequantized().t().contiguous() : m.Layer.Dequantized())));
        return dense.Concat(written).OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
    }

    public static string TorchDTypeName(ScalarType type) => type switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => type.ToString().ToLowerInvariant(),
    };
}
