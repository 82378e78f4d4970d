using LoraShell.Core.IO;
using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Loads a Hugging Face model folder of any supported family: <c>config.json</c> plus
/// <c>model.safetensors</c> or a sharded <c>model.safetensors.index.json</c>, tensors in F32, F16 or
/// BF16, read one at a time. The config is checked against the checkpoint's tensor headers before
/// anything is allocated. Pickle checkpoints (<c>pytorch_model.bin</c>, <c>.pt</c>) are refused:
/// loading them can run code.
/// </summary>
public static class HuggingFaceLoader
{
    public const string ConfigFileName = "config.json";

    public static ModelConfig ReadConfig(string folder)
    {
        string configPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(configPath))
            throw LoraShellException.NotFound("ModelConfigNotFound",
                $"'{folder}' has no {ConfigFileName}; a Hugging Face model folder needs one. Found: {SafetensorsCheckpoint.ListFolder(folder)}.", folder);
        return ModelConfig.FromJson(File.ReadAllText(configPath), configPath);
    }

    /// <param name="format">dtype and quantization to build the model in (default float32): tensors are
    /// converted or quantized as they are read, so a bf16 or quantized model never exists in float32</param>
    public static CausalLM Load(string folder, WeightFormat? format = null, Action<string>? warn = null)
    {
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full)) throw LoraShellException.NotFound("ModelFolderNotFound", $"Model folder '{full}' does not exist.", full);
        var config = ReadConfig(full);
        RefusePickleOnly(full);

        using var checkpoint = SafetensorsCheckpoint.Open(full);
        var stored = CanonicalNames(checkpoint, config, full);
        string head = $"{FamilyLayout.Head}.weight";
        if (config.TieWordEmbeddings && checkpoint.Names.Contains(head))
            warn?.Invoke($"'{full}' ties the output head to the token embedding (config.json's tie_word_embeddings is true), so the file's {head} is not used, as in transformers; set tie_word_embeddings to false to use it.");
        foreach (var name in stored.Values)
        {
            var dtype = checkpoint.Entry(name).DType;
            if (dtype is not ("F32" or "F16" or "BF16"))
                throw LoraShellException.InvalidData("UnsupportedWeightDType", $"Tensor '{name}' in '{full}' is {dtype}; model weights must be F32, F16 or BF16.", name);
        }
        var shapes = stored.ToDictionary(p => p.Key, p => checkpoint.Entry(p.Value).Shape);
        CheckLayerCount(config, shapes.Keys, full);
        StateDictLoader.Check(config.Family.Tensors(config), shapes, full);
        var model = new CausalLM(config, (format ?? WeightFormat.Default) with { Initialize = false });
        try { StateDictLoader.Load(model, full, shapes, name => checkpoint.Read(stored[name])); }
        catch { model.Dispose(); throw; }
        return model;
    }

    /// <summary>
    /// num_hidden_layers against the layers the checkpoint holds, before the config's tensors are even
    /// listed: a config claiming 100,000 layers for a 5-layer file fails at once, naming both numbers.
    /// </summary>
    static void CheckLayerCount(ModelConfig config, IEnumerable<string> names, string source)
    {
        string prefix = config.Family.Layout.LayerPrefix(0)[..^2];
        int found = names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Select(n => n[prefix.Length..].Split('.')[0]).Distinct().Count();
        // A near miss is reported in full by the tensor-by-tensor check that follows; only a count so far
        // off that listing it would itself be the problem (100,000 or 2^31 layers) stops here.
        if (config.NumHiddenLayers > Math.Max(2 * found, found + 64))
            throw LoraShellException.InvalidData("WeightsDoNotMatchModel",
                $"Weights in '{source}' do not match the model described by its config: config.json says num_hidden_layers = {config.NumHiddenLayers}, but the checkpoint holds {found} layers " +
                $"({prefix}{found}.* and later are missing).", source);
    }

    /// <summary>The checkpoint's tensors under this family's names (canonical → stored), ignored ones left out.</summary>
    static Dictionary<string, string> CanonicalNames(SafetensorsCheckpoint checkpoint, ModelConfig config, string source)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in checkpoint.Names.OrderBy(n => n, StringComparer.Ordinal))
        {
            if (config.Family.CanonicalName(name, config) is not string canonical) continue;
            if (!map.TryAdd(canonical, name))
                throw LoraShellException.InvalidData("DuplicateTensor",
                    $"'{source}' holds both '{map[canonical]}' and '{name}', which name the same tensor '{canonical}'.", name);
        }
        return map;
    }

    static void RefusePickleOnly(string folder)
    {
        bool hasSafetensors = Directory.EnumerateFiles(folder, "*.safetensors").Any()
            || File.Exists(Path.Combine(folder, SafetensorsCheckpoint.IndexFileName));
        if (hasSafetensors) return;
        // A llama2.c tokenizer (tok512.bin, tokenizer.bin) is a .bin too, but no weights.
        var pickles = Directory.EnumerateFiles(folder).Select(Path.GetFileName)
            .Where(n => n!.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) || n.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || n.EndsWith(".pth", StringComparison.OrdinalIgnoreCase))
            .Where(n => !(n!.StartsWith("tok", StringComparison.OrdinalIgnoreCase) && n.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)))
            .ToList();
        if (pickles.Count > 0)
            throw LoraShellException.InvalidData("PickleNotSupported",
                $"'{folder}' holds only pickle checkpoints ({string.Join(", ", pickles)}). LoraShell never loads pickle files (they can run code); convert them to safetensors first.", folder);
    }
}
