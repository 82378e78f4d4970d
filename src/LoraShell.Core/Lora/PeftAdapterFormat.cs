using LoraShell.Core.IO;
using LoraShell.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>Result of saving an adapter: where, how big, and what looked wrong.</summary>
public sealed record AdapterSaveResult(DirectoryInfo Folder, int TensorCount, long FileBytes, IReadOnlyList<string> Warnings);

/// <summary>
/// Moves one adapter of a <see cref="LoraAdapterSet"/> to and from a PEFT adapter folder
/// (<see cref="PeftAdapterFiles"/>): which tensors PEFT would save, the save-time sanity checks, and
/// the load-time key diff that names the likely cause of a mismatch.
/// </summary>
public static class PeftAdapterFormat
{

    /// <summary>The tensors PEFT would save for this adapter, by key.</summary>
    public static List<KeyValuePair<string, Tensor>> StateDict(LoraAdapterSet set, string name)
    {
        var config = set.ConfigOf(name);
        var result = new List<KeyValuePair<string, Tensor>>();
        foreach (var (path, layer) in set.Layers().Where(l => l.Layer.Adapters.Contains(name)))
        {
            result.Add(new(PeftKeys.LoraAKey(path), layer.lora_A[name].weight!));
            result.Add(new(PeftKeys.LoraBKey(path), layer.lora_B[name].weight!));
            foreach (var (key, p) in layer.Variant(name).ExtraParameters(layer, path, name)) result.Add(new(key, p));
        }
        if (set.EmbeddingLayer() is { } e && e.Layer.Adapters.Contains(name))
        {
            result.Add(new(PeftKeys.EmbeddingAKey(e.Path), e.Layer.lora_embedding_A[name]));
            result.Add(new(PeftKeys.EmbeddingBKey(e.Path), e.Layer.lora_embedding_B[name]));
        }
        if (set.HasTokenRows(name) && set.TokenRowsLayer() is { } tokens)
            result.Add(new(PeftKeys.TokenRowsKey(tokens.Path), tokens.Layer.Rows(name)));
        foreach (var (pname, p) in set.TrainedBiases(name))
            result.Add(new(PeftKeys.ParameterKey(pname), p));
        foreach (var (pname, t) in set.SavedModuleTensors(name))
            result.Add(new(PeftKeys.ParameterKey(pname), t));
        return result;
    }

    public static AdapterSaveResult Save(LoraAdapterSet set, string name, string folder, bool overwrite, string? baseModelNameOrPath)
        => SaveAll(set, new[] { (name, "") }, folder, overwrite, baseModelNameOrPath)[0];

    /// <summary>
    /// Saves several adapters into one folder as PEFT lays them out (each at a path relative to it: ""
    /// for the folder itself, the adapter's name for a subfolder). Everything is written beside the target
    /// first and swapped in at once, so a failure leaves an existing folder exactly as it was.
    /// </summary>
    public static List<AdapterSaveResult> SaveAll(LoraAdapterSet set, IReadOnlyList<(string Name, string RelativeFolder)> adapters, string folder, bool overwrite,
        string? baseModelNameOrPath)
    {
        var prepared = adapters.Select(a => (a.Name, a.RelativeFolder, Prepare(set, a.Name, baseModelNameOrPath))).ToList();
        var info = PeftAdapterFiles.Write(folder, overwrite, temp =>
        {
            foreach (var (_, relative, p) in prepared)
            {
                string target = relative.Length == 0 ? temp : Path.Combine(temp, relative);
                Directory.CreateDirectory(target);
                PeftAdapterFiles.WriteInto(target, p.Config, p.Tensors);
            }
        });
        return prepared.Select(p =>
        {
            var dir = new DirectoryInfo(p.RelativeFolder.Length == 0 ? info.FullName : Path.Combine(info.FullName, p.RelativeFolder));
            long bytes = new FileInfo(Path.Combine(dir.FullName, PeftAdapterFiles.WeightsFile)).Length;
            return new AdapterSaveResult(dir, p.Item3.Tensors.Count, bytes, p.Item3.Warnings);
        }).ToList();
    }

    /// <summary>The config and tensors of one adapter, after the save-time sanity checks (errors) and with their warnings.</summary>
    static (LoraConfig Config, List<KeyValuePair<string, Tensor>> Tensors, List<string> Warnings) Prepare(LoraAdapterSet set, string name, string? baseModelNameOrPath)
    {
        var config = set.ConfigOf(name);
        if (config.BaseModelNameOrPath is null && baseModelNameOrPath is not null) config = config with { BaseModelNameOrPath = baseModelNameOrPath };
        var tensors = StateDict(set, name);
        int layers = set.Layers().Count(l => l.Layer.Adapters.Contains(name));
        var warnings = new List<string>();
        if (tensors.Count == 0)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "EmptyAdapter", $"Adapter '{name}' has no tensors to save.", name);
        int loraKeys = tensors.Count(t => PeftKeys.IsFactorKey(t.Key));
        if (loraKeys != 2 * layers)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterKeyCountMismatch", $"Adapter '{name}' wraps {layers} modules but {loraKeys} LoRA tensors were collected (expected {2 * layers}).", name);
        using (no_grad())
        {
            var bad = tensors.FirstOrDefault(t => !t.Value.isfinite().all().item<bool>());
            if (bad.Key is not null)
                throw new LoraShellException(LoraErrorKind.InvalidOperation, "NonFiniteAdapter", $"Adapter '{name}' holds NaN or Inf values ('{bad.Key}'); it is not saved. Training diverged: lower the learning rate and resume from a good checkpoint.", name);
            var zeroB = tensors.Where(t => t.Key.EndsWith($".{PeftKeys.LoraB}.weight") && t.Value.abs().max().item<float>() == 0).Select(t => t.Key).ToList();
            if (layers > 0 && zeroB.Count == layers)
                warnings.Add($"Every lora_B of adapter '{name}' is zero: the adapter does not change the model (untrained?).");
        }
        return (config, tensors, warnings);
    }

    /// <summary>
    /// Loads a PEFT adapter folder into the model as adapter <paramref name="name"/>. Every key and shape
    /// is checked against the modules the config targets before anything changes; mismatches are listed
    /// with their likely cause.
    /// </summary>
    /// <param name="modelPath">where the model came from, to compare with the adapter's base_model_name_or_path (a warning when the names differ)</param>
    public static LoraConfig Load(LoraAdapterSet set, string folder, string name, Action<string>? warn = null, string? modelPath = null)
    {
        LoraAdapterSet.CheckName(name);
        using var adapter = PeftAdapterFiles.Open(folder, name, warn);
        string dir = adapter.Path;
        var config = adapter.Config;
        if (set.Contains(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterExists",
                $"The model already has an adapter named '{name}'; import this one under another -Name.", name);

        int layerCount = set.Model.LayerCount;
        var outside = config.LayersToTransform?.Where(i => i < 0 || i >= layerCount).ToList();
        if (outside is { Count: > 0 })
            throw LoraShellException.InvalidData("AdapterDoesNotMatchModel",
                $"Adapter '{dir}' has layers_to_transform {string.Join(", ", outside)}, but this model has layers 0..{layerCount - 1} (likely cause: an adapter for a deeper model).", dir);
        if (config.BaseModelNameOrPath is string recorded && modelPath is not null && warn is not null
            && !string.Equals(LastName(recorded), LastName(modelPath), StringComparison.OrdinalIgnoreCase))
            warn($"Adapter '{dir}' was made for base model '{recorded}'; this model is '{modelPath}'. Every key and shape fits, so it loads, but check that it is the same model.");

        // Loaded weights replace the init, and PiSSA must not rewrite W0 a second time.
        var loadConfig = config with { Init = LoraInit.Default };
        List<AdapterPlanItem> plan;
        try { plan = set.Plan(loadConfig); }
        catch (LoraShellException e) when (e.ErrorId is "NoTargetModulesMatched" or "RankTooLarge" or "ModulesToSaveNotFound" or "TokenIndexOutOfRange" or "TrainableTokensModuleNotFound" or "TrainableTokensOnUntiedHead")
        {
            throw LoraShellException.InvalidData("AdapterDoesNotMatchModel", $"Adapter '{dir}' does not fit this model: {e.Message} (likely cause: an adapter for another base model).", dir);
        }

        // What PEFT warns about and corrects, or would silently not use.
        bool conv1d = set.Model.FanInFanOut;
        if (config.FanInFanOut != conv1d)
            warn?.Invoke($"Adapter '{dir}' sets fan_in_fan_out {(config.FanInFanOut ? "true" : "false")}, but this model's layers are {(conv1d ? "Conv1D ([in, out] weights)" : "Linear ([out, in] weights)")}; as PEFT does, it is read as {(conv1d ? "true" : "false")}.");
        foreach (var (pattern, key) in config.UnusedPatternKeys(plan.Select(p => p.ModulePath).ToList()))
            warn?.Invoke($"Adapter '{dir}' has {pattern} key '{key}', which matches none of the {plan.Count} modules it wraps, so it changes nothing (a typo?).");

        var file = adapter.Weights;
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal);
        string embeddingPath = set.Model.EmbeddingSlot().Path;
        foreach (var item in plan)
        {
            if (item.ModulePath == embeddingPath)
            {
                expected[PeftKeys.EmbeddingAKey(item.ModulePath)] = new[] { (long)item.Rank, item.InFeatures };
                expected[PeftKeys.EmbeddingBKey(item.ModulePath)] = new[] { item.OutFeatures, (long)item.Rank };
                continue;
            }
            expected[PeftKeys.LoraAKey(item.ModulePath)] = new[] { (long)item.Rank, item.InFeatures };
            expected[PeftKeys.LoraBKey(item.ModulePath)] = new[] { item.OutFeatures, (long)item.Rank };
            if (config.UseDora) expected[PeftKeys.MagnitudeKey(item.ModulePath)] = new[] { item.OutFeatures };
        }
        if (TrainableTokenTargets.Resolve(set.Model, loadConfig) is long[] rows)
            expected[PeftKeys.TokenRowsKey(embeddingPath)] = new[] { rows.LongLength, set.Model.EmbeddingSlot().Base.weight!.shape[1] };
        CheckKeys(dir, file, expected, plan, name);

        set.Add(name, loadConfig);
        set.KeepInitialization(name);
        CopyInto(set, name, file, dir);
        return config;
    }

    /// <summary>The last segment of a model name or path (a hub id's model, a folder's name, a file's name).</summary>
    static string LastName(string nameOrPath)
    {
        string last = nameOrPath.Replace('\\', '/').TrimEnd('/').Split('/').Last();
        return last.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) || last.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? Path.GetFileNameWithoutExtension(last) : last;
    }

    /// <summary>
    /// Copies the adapter's tensors from <paramref name="file"/> into the model's adapter
    /// <paramref name="name"/>, checking each key and shape first (a training checkpoint is read this way too).
    /// </summary>
    public static void CopyInto(LoraAdapterSet set, string name, SafetensorsFile file, string source, string errorId = "AdapterDoesNotMatchModel")
    {
        var targets = StateDict(set, name);
        var stored = StoredNames(file);
        foreach (var (key, tensor) in targets)
            if (!stored.TryGetValue(key, out var inFile) || !file[inFile].Shape.SequenceEqual(tensor.shape))
                throw LoraShellException.InvalidData(errorId, $"'{source}' has no tensor '{key}' of shape [{string.Join(", ", tensor.shape)}].", source);
        using var _ = no_grad();
        foreach (var (key, tensor) in targets)
        {
            using var scope = NewDisposeScope();
            var value = file.ReadTensor(stored[key]);
            if (!value.isfinite().all().item<bool>())
                throw LoraShellException.InvalidData("NonFiniteWeights", $"'{source}': tensor '{key}' holds NaN or Inf values; an adapter with them would make every output NaN.", key);
            tensor.copy_(value);
        }
    }

    /// <summary>
    /// The file's tensor names by the key PEFT saves them under: a DoRA magnitude stored as
    /// <c>…lora_magnitude_vector.weight</c> (the module's own state-dict spelling, which PEFT also loads)
    /// is found under <c>…lora_magnitude_vector</c>.
    /// </summary>
    static Dictionary<string, string> StoredNames(SafetensorsFile file)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var n in file.Names)
        {
            string key = n.EndsWith($".{PeftKeys.Magnitude}.weight", StringComparison.Ordinal) ? n[..^".weight".Length] : n;
            if (!names.TryAdd(key, n))
                throw LoraShellException.InvalidData("ConflictingTensorCopies", $"The adapter file holds '{key}' twice, as '{names[key]}' and '{n}'; keep one.", n);
        }
        return names;
    }

    static void CheckKeys(string dir, SafetensorsFile file, Dictionary<string, long[]> expected, List<AdapterPlanItem> plan, string name)
    {
        var stored = StoredNames(file);
        var present = stored.Keys.ToHashSet(StringComparer.Ordinal);
        var loraKeys = present.Where(PeftKeys.IsLayerKey).ToList();
        var missing = expected.Keys.Where(k => !present.Contains(k)).ToList();
        var unexpected = loraKeys.Where(k => !expected.ContainsKey(k)).ToList();
        var misShaped = expected.Where(e => present.Contains(e.Key) && !file[stored[e.Key]].Shape.SequenceEqual(e.Value)).ToList();
        if (missing.Count + unexpected.Count + misShaped.Count == 0) return;

        var causes = new List<string>();
        if (unexpected.Any(k => k.Contains($".{PeftKeys.LoraA}.{name}.") || k.Contains($".{PeftKeys.LoraB}.{name}.") || k.Contains($".{PeftKeys.LoraA}.default.")))
            causes.Add("keys carry an adapter name (PEFT's files never do): the file was written with adapter names left in");
        if (missing.Count > 0 && unexpected.Count > 0 && unexpected.All(k => !k.StartsWith(PeftKeys.FilePrefix)))
            causes.Add($"keys lack PEFT's '{PeftKeys.FilePrefix}' prefix");
        if (misShaped.Count > 0 && misShaped.All(m => m.Key.EndsWith(PeftKeys.TokenRows, StringComparison.Ordinal)))
        {
            var (key, shape) = misShaped[0];
            causes.Add($"the file holds {file[stored[key]].Shape[0]} token rows of width {file[stored[key]].Shape.Last()}, but trainable_token_indices lists {shape[0]} ids for an embedding of width {shape[1]}");
        }
        else if (misShaped.Count > 0)
        {
            bool onlyRank = misShaped.All(m =>
            {
                var actual = file[stored[m.Key]].Shape;
                return m.Key.EndsWith($"{PeftKeys.LoraA}.weight") ? actual[1] == m.Value[1] : actual[0] == m.Value[0];
            });
            causes.Add(onlyRank
                ? $"another rank: the file's r is {RankOf(file, misShaped[0].Key)}, the config says {plan[0].Rank}"
                : "another base model: the in/out sizes differ from this model's layers");
        }
        if (missing.Count > 0 && missing.All(k => k.EndsWith(PeftKeys.Magnitude, StringComparison.Ordinal)))
            causes.Add("the config says use_dora but the file holds no DoRA magnitudes (lora_magnitude_vector)");
        else if (unexpected.Count > 0 && missing.Count == 0 && unexpected.All(k => k.EndsWith(PeftKeys.Magnitude, StringComparison.Ordinal)))
            causes.Add("the file holds DoRA magnitudes (lora_magnitude_vector) but the config does not say use_dora: true");
        else if (missing.Count > 0 && missing.All(k => k.EndsWith(PeftKeys.TokenRows, StringComparison.Ordinal)))
            causes.Add("the config has trainable_token_indices but the file holds no token rows (token_adapter.trainable_tokens_delta)");
        else if (unexpected.Count > 0 && missing.Count == 0 && unexpected.All(k => k.EndsWith(PeftKeys.TokenRows, StringComparison.Ordinal)))
            causes.Add("the file holds token rows (token_adapter.trainable_tokens_delta) but the config has no trainable_token_indices");
        else if (missing.Count > 0 && unexpected.Count == 0 && misShaped.Count == 0)
            causes.Add("the file covers fewer modules than target_modules selects (a different target list or layers_to_transform)");

        string Preview(IEnumerable<string> keys) { var l = keys.ToList(); return string.Join(", ", l.Take(4)) + (l.Count > 4 ? $", … ({l.Count - 4} more)" : ""); }
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing {missing.Count}: {Preview(missing)}");
        if (unexpected.Count > 0) parts.Add($"unexpected {unexpected.Count}: {Preview(unexpected)}");
        if (misShaped.Count > 0) parts.Add($"wrong shape {misShaped.Count}: {Preview(misShaped.Select(m => $"{m.Key} file [{string.Join(", ", file[stored[m.Key]].Shape)}] vs model [{string.Join(", ", m.Value)}]"))}");
        throw LoraShellException.InvalidData("AdapterDoesNotMatchModel",
            $"Adapter '{dir}' does not match this model ({string.Join("; ", parts)}). Likely cause: {(causes.Count > 0 ? string.Join("; ", causes) : "an adapter for another model")}.", dir);
    }

    static long RankOf(SafetensorsFile file, string key)
    {
        var shape = file[key].Shape;
        return key.EndsWith($"{PeftKeys.LoraA}.weight") ? shape[0] : shape[1];
    }
}
