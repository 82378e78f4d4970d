using LoraShell.Core.IO;
using LoraShell.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>Result of saving an adapter: where, how big, and what looked wrong.</summary>
public sealed record AdapterSaveResult(DirectoryInfo Folder, int TensorCount, long FileBytes, IReadOnlyList<string> Warnings);

/// <summary>
/// Hugging Face PEFT's on-disk adapter: <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>
/// with keys <c>base_model.model.PATH.lora_A.weight</c> [r, in] and <c>…lora_B.weight</c> [out, r]
/// (no adapter name in the key), biases and modules_to_save as <c>base_model.model.PATH.PARAM</c>,
/// metadata {"format": "pt"}.
/// </summary>
public static class PeftAdapterFormat
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    const string Prefix = "base_model.model.";

    /// <summary>The tensors PEFT would save for this adapter, by key.</summary>
    public static List<KeyValuePair<string, Tensor>> StateDict(LoraAdapterSet set, string name)
    {
        var config = set.ConfigOf(name);
        var result = new List<KeyValuePair<string, Tensor>>();
        foreach (var (path, layer) in set.Layers().Where(l => l.Layer.Adapters.Contains(name)))
        {
            result.Add(new($"{Prefix}{path}.lora_A.weight", layer.lora_A[name].weight!));
            result.Add(new($"{Prefix}{path}.lora_B.weight", layer.lora_B[name].weight!));
        }
        foreach (var (pname, p) in set.TrainedBiases(name))
            result.Add(new($"{Prefix}{pname}", p));
        foreach (var (pname, p) in set.ModulesToSaveParameters(config))
            result.Add(new($"{Prefix}{pname}", p));
        return result;
    }

    public static AdapterSaveResult Save(LoraAdapterSet set, string name, string folder, bool overwrite, string? baseModelNameOrPath)
    {
        var config = set.ConfigOf(name);
        if (config.BaseModelNameOrPath is null && baseModelNameOrPath is not null) config = config with { BaseModelNameOrPath = baseModelNameOrPath };
        var tensors = StateDict(set, name);
        int layers = set.Layers().Count(l => l.Layer.Adapters.Contains(name));
        var warnings = new List<string>();
        if (tensors.Count == 0)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "EmptyAdapter", $"Adapter '{name}' has no tensors to save.", name);
        int loraKeys = tensors.Count(t => t.Key.EndsWith(".lora_A.weight") || t.Key.EndsWith(".lora_B.weight"));
        if (loraKeys != 2 * layers)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterKeyCountMismatch", $"Adapter '{name}' wraps {layers} modules but {loraKeys} LoRA tensors were collected (expected {2 * layers}).", name);
        using (no_grad())
        {
            var zeroB = tensors.Where(t => t.Key.EndsWith(".lora_B.weight") && t.Value.abs().max().item<float>() == 0).Select(t => t.Key).ToList();
            if (zeroB.Count == layers)
                warnings.Add($"Every lora_B of adapter '{name}' is zero: the adapter does not change the model (untrained?).");
        }

        var info = AtomicFile.WriteDirectory(folder, overwrite, temp =>
        {
            File.WriteAllText(Path.Combine(temp, ConfigFile), config.ToJson());
            SafetensorsWriter.Write(Path.Combine(temp, WeightsFile), tensors.OrderBy(t => t.Key, StringComparer.Ordinal), HuggingFaceWriter.PtMetadata);
        });
        long bytes = new FileInfo(Path.Combine(info.FullName, WeightsFile)).Length;
        return new AdapterSaveResult(info, tensors.Count, bytes, warnings);
    }

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

    /// <summary>
    /// Loads a PEFT adapter folder into the model as adapter <paramref name="name"/>. Every key and shape
    /// is checked against the modules the config targets before anything changes; mismatches are listed
    /// with their likely cause.
    /// </summary>
    public static LoraConfig Load(LoraAdapterSet set, string folder, string name, Action<string>? warn = null)
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
        if (set.Contains(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterExists",
                $"The model already has an adapter named '{name}'; import this one under another -Name.", name);

        // Loaded weights replace the init, and PiSSA must not rewrite W0 a second time.
        var loadConfig = config with { Init = LoraInit.Default };
        List<AdapterPlanItem> plan;
        try { plan = set.Plan(loadConfig); }
        catch (LoraShellException e) when (e.ErrorId is "NoTargetModulesMatched" or "RankTooLarge")
        {
            throw LoraShellException.InvalidData("AdapterDoesNotMatchModel", $"Adapter '{dir}' does not fit this model: {e.Message} (likely cause: an adapter for another base model).", dir);
        }

        using var file = SafetensorsFile.Open(weightsPath);
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var item in plan)
        {
            expected[$"{Prefix}{item.ModulePath}.lora_A.weight"] = new[] { (long)item.Rank, item.InFeatures };
            expected[$"{Prefix}{item.ModulePath}.lora_B.weight"] = new[] { item.OutFeatures, (long)item.Rank };
        }
        CheckKeys(dir, file, expected, plan, name);

        set.Add(name, loadConfig);
        using (no_grad())
        {
            foreach (var (path, layer) in set.Layers().Where(l => l.Layer.Adapters.Contains(name)))
            {
                using var a = file.ReadTensor($"{Prefix}{path}.lora_A.weight");
                using var b = file.ReadTensor($"{Prefix}{path}.lora_B.weight");
                layer.lora_A[name].weight!.copy_(a);
                layer.lora_B[name].weight!.copy_(b);
            }
            var byName = set.ModulesToSaveParameters(config).ToDictionary(p => $"{Prefix}{p.Name}", p => p.Parameter);
            foreach (var key in file.Names.Where(k => !expected.ContainsKey(k)))
                if (byName.TryGetValue(key, out var p)) { using var t = file.ReadTensor(key); p.copy_(t); }
        }
        return config;
    }

    static void CheckKeys(string dir, SafetensorsFile file, Dictionary<string, long[]> expected, List<AdapterPlanItem> plan, string name)
    {
        var present = file.Names.ToHashSet(StringComparer.Ordinal);
        var loraKeys = present.Where(k => k.Contains(".lora_A.") || k.Contains(".lora_B.")).ToList();
        var missing = expected.Keys.Where(k => !present.Contains(k)).ToList();
        var unexpected = loraKeys.Where(k => !expected.ContainsKey(k)).ToList();
        var misShaped = expected.Where(e => present.Contains(e.Key) && !file[e.Key].Shape.SequenceEqual(e.Value)).ToList();
        if (missing.Count + unexpected.Count + misShaped.Count == 0) return;

        var causes = new List<string>();
        if (unexpected.Any(k => k.Contains($".lora_A.{name}.") || k.Contains($".lora_B.{name}.") || k.Contains(".lora_A.default.")))
            causes.Add("keys carry an adapter name (PEFT's files never do): the file was written with adapter names left in");
        if (missing.Count > 0 && unexpected.Count > 0 && unexpected.All(k => !k.StartsWith(Prefix)))
            causes.Add($"keys lack PEFT's '{Prefix}' prefix");
        if (misShaped.Count > 0)
        {
            bool onlyRank = misShaped.All(m =>
            {
                var actual = file[m.Key].Shape;
                return m.Key.EndsWith("lora_A.weight") ? actual[1] == m.Value[1] : actual[0] == m.Value[0];
            });
            causes.Add(onlyRank
                ? $"another rank: the file's r is {RankOf(file, misShaped[0].Key)}, the config says {plan[0].Rank}"
                : "another base model: the in/out sizes differ from this model's layers");
        }
        if (missing.Count > 0 && unexpected.Count == 0 && misShaped.Count == 0)
            causes.Add("the file covers fewer modules than target_modules selects (a different target list or layers_to_transform)");

        string Preview(IEnumerable<string> keys) { var l = keys.ToList(); return string.Join(", ", l.Take(4)) + (l.Count > 4 ? $", … ({l.Count - 4} more)" : ""); }
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing {missing.Count}: {Preview(missing)}");
        if (unexpected.Count > 0) parts.Add($"unexpected {unexpected.Count}: {Preview(unexpected)}");
        if (misShaped.Count > 0) parts.Add($"wrong shape {misShaped.Count}: {Preview(misShaped.Select(m => $"{m.Key} file [{string.Join(", ", file[m.Key].Shape)}] vs model [{string.Join(", ", m.Value)}]"))}");
        throw LoraShellException.InvalidData("AdapterDoesNotMatchModel",
            $"Adapter '{dir}' does not match this model ({string.Join("; ", parts)}). Likely cause: {(causes.Count > 0 ? string.Join("; ", causes) : "an adapter for another model")}.", dir);
    }

    static long RankOf(SafetensorsFile file, string key)
    {
        var shape = file[key].Shape;
        return key.EndsWith("lora_A.weight") ? shape[0] : shape[1];
    }
}
