using LoraShell.Core.IO;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// Saves a T5 model as a Hugging Face folder (config.json + model.safetensors), atomically, under
/// transformers' names: adapter factors are left out and wrapped layers give their base weight (with
/// whatever is merged into it), as for the decoder-only families.
/// </summary>
public static class T5Writer
{
    public static DirectoryInfo Save(T5ForConditionalGeneration model, string folder, bool overwrite, IEnumerable<string>? extraFiles = null)
        => AtomicFile.WriteDirectory(folder, overwrite, temp => WriteInto(model, temp, extraFiles));

    public static void WriteInto(T5ForConditionalGeneration model, string folder, IEnumerable<string>? extraFiles = null)
    {
        File.WriteAllText(Path.Combine(folder, HuggingFaceLoader.ConfigFileName), model.Config.ToJson());
        var tensors = model.state_dict()
            .Where(p => !PeftKeys.IsAdapterStateName(p.Key))
            .Select(p => KeyValuePair.Create(PeftKeys.WithoutBaseLayer(p.Key), p.Value))
            .OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
        SafetensorsWriter.Write(Path.Combine(folder, SafetensorsCheckpoint.SingleFileName), tensors, SafetensorsHeader.PyTorchMetadata);
        foreach (var file in extraFiles ?? Enumerable.Empty<string>())
            File.WriteAllBytes(Path.Combine(folder, Path.GetFileName(file)), File.ReadAllBytes(file));
    }
}
