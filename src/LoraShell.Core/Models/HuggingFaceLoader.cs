using LoraShell.Core.IO;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Loads a Hugging Face Llama folder: <c>config.json</c> plus <c>model.safetensors</c> or a sharded
/// <c>model.safetensors.index.json</c>, tensors in F32, F16 or BF16, read one at a time.
/// Pickle checkpoints (<c>pytorch_model.bin</c>, <c>.pt</c>) are refused: loading them can run code.
/// </summary>
public static class HuggingFaceLoader
{
    public const string ConfigFileName = "config.json";

    public static LlamaConfig ReadConfig(string folder)
    {
        string configPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(configPath))
            throw LoraShellException.NotFound("ModelConfigNotFound",
                $"'{folder}' has no {ConfigFileName}; a Hugging Face model folder needs one. Found: {SafetensorsCheckpoint.ListFolder(folder)}.", folder);
        return LlamaConfig.FromJson(File.ReadAllText(configPath), configPath);
    }

    public static LlamaForCausalLM Load(string folder)
    {
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full)) throw LoraShellException.NotFound("ModelFolderNotFound", $"Model folder '{full}' does not exist.", full);
        var config = ReadConfig(full);
        RefusePickleOnly(full);

        using var checkpoint = SafetensorsCheckpoint.Open(full);
        foreach (var name in checkpoint.Names)
        {
            var dtype = checkpoint.Entry(name).DType;
            if (dtype is not ("F32" or "F16" or "BF16"))
                throw LoraShellException.InvalidData("UnsupportedWeightDType", $"Tensor '{name}' in '{full}' is {dtype}; model weights must be F32, F16 or BF16.", name);
        }
        var model = new LlamaForCausalLM(config);
        try
        {
            var shapes = checkpoint.Names.ToDictionary(n => n, n => checkpoint.Entry(n).Shape);
            var ignore = config.TieWordEmbeddings ? new HashSet<string> { "lm_head.weight" } : null;
            StateDictLoader.Load(model, full, shapes, checkpoint.Read, ignore);
        }
        catch { model.Dispose(); throw; }
        return model;
    }

    static void RefusePickleOnly(string folder)
    {
        bool hasSafetensors = Directory.EnumerateFiles(folder, "*.safetensors").Any()
            || File.Exists(Path.Combine(folder, SafetensorsCheckpoint.IndexFileName));
        if (hasSafetensors) return;
        var pickles = Directory.EnumerateFiles(folder).Select(Path.GetFileName)
            .Where(n => n!.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) || n.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || n.EndsWith(".pth", StringComparison.OrdinalIgnoreCase))
            .ToList();
        if (pickles.Count > 0)
            throw LoraShellException.InvalidData("PickleNotSupported",
                $"'{folder}' holds only pickle checkpoints ({string.Join(", ", pickles)}). LoraShell never loads pickle files (they can run code); convert them to safetensors first.", folder);
    }
}
