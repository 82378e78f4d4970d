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
    /// </summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> HuggingFaceStateDict(CausalLM model)
        => model.state_dict()
            .Where(p => !p.Key.Contains(".lora_A.") && !p.Key.Contains(".lora_B."))
            .Select(p => KeyValuePair.Create(p.Key.Replace(".base_layer.", "."), p.Value));

    public static string TorchDTypeName(ScalarType type) => type switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => type.ToString().ToLowerInvariant(),
    };
}
