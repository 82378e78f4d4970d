using LoraShell.Core.IO;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// The files of a Hugging Face PEFT adapter folder and the one writer and reader of them:
/// <c>adapter_config.json</c> + <c>adapter_model.safetensors</c> with keys
/// <c>base_model.model.PATH.lora_A.weight</c> [r, in] and <c>…lora_B.weight</c> [out, r] (no adapter
/// name in the key), other saved parameters as <c>base_model.model.PATH</c>, metadata {"format": "pt"}.
/// Everything that writes an adapter (Save-LoraAdapter, training checkpoints, Invoke-SvdDelta) goes
/// through <see cref="WriteInto(string, LoraConfig, IEnumerable{KeyValuePair{string, Tensor}})"/>.
/// </summary>
public static class PeftAdapterFiles
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>Writes config and tensors (sorted by key, as PEFT's state dict is) into an existing folder.</summary>
    public static void WriteInto(string folder, LoraConfig config, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        File.WriteAllText(Path.Combine(folder, ConfigFile), config.ToJson());
        SafetensorsWriter.Write(Path.Combine(folder, WeightsFile), tensors.OrderBy(t => t.Key, StringComparer.Ordinal), SafetensorsHeader.PyTorchMetadata);
    }

    /// <summary>Writes config and tensors streamed to disk beforehand (adapters too large to hold at once).</summary>
    public static void WriteInto(string folder, LoraConfig config, SafetensorsStreamWriter streamed)
    {
        File.WriteAllText(Path.Combine(folder, ConfigFile), config.ToJson());
        streamed.Finish(Path.Combine(folder, WeightsFile), SafetensorsHeader.PyTorchMetadata);
    }

    /// <summary>Writes a whole adapter folder atomically: a folder that exists is replaced only with <paramref name="overwrite"/>.</summary>
    public static DirectoryInfo Write(string folder, bool overwrite, Action<string> writeInto)
        => AtomicFile.WriteDirectory(folder, overwrite, writeInto);

    /// <summary>
    /// Finds the adapter folder: <paramref name="folder"/> itself, or PEFT's <c>folder/NAME</c> layout
    /// for a non-default adapter saved beside others.
    /// </summary>
    public static string Locate(string folder, string name)
    {
        string full = Path.GetFullPath(folder);
        if (File.Exists(Path.Combine(full, ConfigFile))) return full;
        string sub = Path.Combine(full, name);
        if (File.Exists(Path.Combine(sub, ConfigFile))) return sub;
        if (!Directory.Exists(full)) throw LoraShellException.NotFound("AdapterNotFound", $"Adapter folder '{full}' does not exist.", full);
        throw LoraShellException.NotFound("AdapterConfigNotFound",
            $"'{full}' has no {ConfigFile} (nor has '{sub}'); a PEFT adapter folder holds {ConfigFile} and {WeightsFile}. Found: {SafetensorsCheckpoint.ListFolder(full)}.", full);
    }

    /// <summary>Opens an adapter folder for reading: its config and its weights file (tensor at a time).</summary>
    public static PeftAdapterFolder Open(string folder, string name, Action<string>? warn = null)
    {
        string dir = Locate(folder, name);
        string configPath = Path.Combine(dir, ConfigFile);
        var config = LoraConfig.FromJson(File.ReadAllText(configPath), configPath, warn);
        string weightsPath = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weightsPath))
        {
            if (File.Exists(Path.Combine(dir, "adapter_model.bin")))
                throw LoraShellException.InvalidData("PickleNotSupported", $"'{dir}' holds adapter_model.bin (pickle); LoraShell only loads {WeightsFile}. Re-save it with safe_serialization=True.", dir);
            throw LoraShellException.NotFound("AdapterWeightsNotFound", $"'{dir}' has {ConfigFile} but no {WeightsFile}.", dir);
        }
        return new PeftAdapterFolder(dir, config, SafetensorsFile.Open(weightsPath));
    }
}

/// <summary>An adapter folder opened by <see cref="PeftAdapterFiles.Open"/>.</summary>
public sealed class PeftAdapterFolder : IDisposable
{
    internal PeftAdapterFolder(string path, LoraConfig config, SafetensorsFile weights)
    {
        Path = path;
        Config = config;
        Weights = weights;
    }

    public string Path { get; }
    public LoraConfig Config { get; }
    public SafetensorsFile Weights { get; }

    public void Dispose() => Weights.Dispose();
}
