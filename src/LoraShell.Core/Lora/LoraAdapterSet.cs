using LoraShell.Core.IO;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// The named LoRA adapters of one model (PEFT's LoraModel): injection by module name, several
/// adapters side by side, which ones are active, disable, delete, merge and unmerge, and which
/// parameters train.
/// </summary>
public sealed class LoraAdapterSet
{
    readonly IAdaptableModel _model;
    readonly List<string> _order = new();
    readonly Dictionary<string, LoraConfig> _configs = new(StringComparer.Ordinal);
    readonly ModulesToSaveCopies _savedModules = new();

    public LoraAdapterSet(IAdaptableModel model) => _model = model;

    /// <summary>The model the adapters live in.</summary>
    public IAdaptableModel Model => _model;

    public IReadOnlyList<string> Names => _order;
    public bool Contains(string name) => _configs.ContainsKey(name);
    public LoraConfig ConfigOf(string name) => _configs.TryGetValue(name, out var c) ? c : throw NotFound(name);
    public IReadOnlyList<string> ActiveNames { get; private set; } = Array.Empty<string>();
    public bool Disabled { get; private set; }

    LoraShellException NotFound(string name) => LoraShellException.NotFound("AdapterNotFound",
        $"The model has no adapter named '{name}'. Adapters: {(_order.Count == 0 ? "(none)" : string.Join(", ", _order))}.", name);

    /// <summary>Every LoRA-wrapped layer, with its module path.</summary>
    public IEnumerable<(string Path, LoraLinear Layer)> Layers()
        => _model.LinearSlots().Where(s => s.Module is LoraLinear).Select(s => (s.Path, (LoraLinear)s.Module));

    /// <summary>What <see cref="Add"/> would do, without doing it.</summary>
    public List<AdapterPlanItem> Plan(LoraConfig config)
    {
        config.Validate();
        CheckEmbeddingUse(config);
        foreach (var module in config.ModulesToSave ?? Array.Empty<string>())
            if (!ModulesToSaveParameters(config with { ModulesToSave = new[] { module } }).Any() && !SavesTiedHead(new[] { module }))
                throw LoraShellException.InvalidArgument("ModulesToSaveNotFound",
                    $"modules_to_save names '{module}', which is no module of this model (modules are e.g. '{FamilyLayoutHead}', '{_model.EmbeddingSlot().Path}', 'model.norm').", module);
        var plan = new List<AdapterPlanItem>();
        foreach (var slot in TargetMatcher.Select(_model, config))
        {
            var projection = ProjectionSlots.BaseOf(slot.Module);
            long outF = projection.OutFeatures, inF = projection.InFeatures;
            int r = config.RankFor(slot.Path);
            if (r > Math.Min(inF, outF))
                throw LoraShellException.InvalidArgument("RankTooLarge",
                    $"Rank {r} is larger than min(in, out) = {Math.Min(inF, outF)} of '{slot.Path}' [{outF} x {inF}]; choose r <= {Math.Min(inF, outF)}.", r);
            plan.Add(new AdapterPlanItem(slot.Path, inF, outF, r, config.AlphaFor(slot.Path), config.ScalingFor(slot.Path)));
        }
        if (TargetMatcher.SelectsEmbedding(_model, config))
        {
            var e = _model.EmbeddingSlot();
            if (TokenRowsLayer() is { Layer.Adapters.Count: > 0 })
                throw LoraShellException.InvalidArgument("EmbeddingAlreadyWrapped", $"Another adapter trains token rows of the embedding '{e.Path}'; LoRA on the embedding cannot sit beside it. Delete that adapter first, or leave the embedding out of the targets.", e.Path);
            if (config.UseDora)
                throw LoraShellException.InvalidArgument("DoraOnEmbedding", $"DoRA on the embedding '{e.Path}' is not supported; leave it out of the targets or use plain LoRA.", e.Path);
            if (config.Init == LoraInit.Pissa)
                throw LoraShellException.InvalidArgument("InitNotForEmbedding", $"PiSSA initialises Linear layers; '{e.Path}' is an embedding. Leave it out of the targets or use the default init.", e.Path);
            long count = e.Base.weight!.shape[0], dim = e.Base.weight!.shape[1];
            int r = config.RankFor(e.Path);
            if (r > Math.Min(count, dim))
                throw LoraShellException.InvalidArgument("RankTooLarge", $"Rank {r} is larger than min(vocabulary, width) = {Math.Min(count, dim)} of '{e.Path}'.", r);
            // As PEFT's lora.Embedding: A [r, num_embeddings] (the "in" side) and B [dim, r].
            plan.Add(new AdapterPlanItem(e.Path, count, dim, r, config.AlphaFor(e.Path), config.ScalingFor(e.Path)));
        }
        return plan;
    }

    const string FamilyLayoutHead = Models.Families.FamilyLayout.Head;

    /// <summary>
    /// The embedding can be trained one way at a time across adapters: LoRA on it, trained token rows, or a
    /// modules_to_save copy (each rewires or replaces its weight), and on a tied model token rows cannot sit
    /// beside a copy of the head or the embedding (the rows would reach one side only). Refused before anything changes.
    /// </summary>
    void CheckEmbeddingUse(LoraConfig config)
    {
        var e = _model.EmbeddingSlot();
        var rows = TrainableTokenTargets.Resolve(_model, config); // its own refusals first
        bool lora = TargetMatcher.SelectsEmbedding(_model, config), copies = LoraConfig.SavesModule(config.ModulesToSave, e.Path);
        string? saver = _configs.FirstOrDefault(c => LoraConfig.SavesModule(c.Value.ModulesToSave, e.Path)).Key;
        if ((rows is not null || lora) && saver is not null)
            throw LoraShellException.InvalidArgument("EmbeddingInUse", $"Adapter '{saver}' keeps a modules_to_save copy of the embedding '{e.Path}'; {(lora ? "LoRA on it" : "trained token rows of it")} cannot sit beside that copy. Delete that adapter first, or leave the embedding out.", e.Path);
        string? wrapper = EmbeddingLayer()?.Layer.Adapters.FirstOrDefault() ?? TokenRowsLayer()?.Layer.Adapters.FirstOrDefault();
        if (copies && wrapper is not null)
            throw LoraShellException.InvalidArgument("EmbeddingInUse", $"Adapter '{wrapper}' {(EmbeddingLayer() is not null ? "has LoRA on" : "trains token rows of")} the embedding '{e.Path}'; a modules_to_save copy of it cannot sit beside that. Delete that adapter first, or leave the embedding out of modules_to_save.", e.Path);
        if (rows is not null && EmbeddingLayer()?.Layer.Adapters.FirstOrDefault() is string loraAdapter)
            throw LoraShellException.InvalidArgument("EmbeddingAlreadyWrapped", $"Adapter '{loraAdapter}' has LoRA on the embedding '{e.Path}'; trained token rows cannot sit beside it. Delete that adapter first, or leave out the token ids.", e.Path);
        bool tiedOrigin = _model.TieWordEmbeddings || _headUntied;
        if (tiedOrigin && rows is not null && _configs.FirstOrDefault(c => CopiesTiedSide(c.Value)).Key is string copier)
            throw LoraShellException.InvalidArgument("TrainableTokensOverlap", $"Adapter '{copier}' keeps a modules_to_save copy of this model's tied head or embedding, which unties them; trained token rows would then reach the embedding only. Delete that adapter first, or leave out the token ids.", copier);
        if (tiedOrigin && CopiesTiedSide(config) && TokenRowsLayer()?.Layer.Adapters.FirstOrDefault() is string rowing)
            throw LoraShellException.InvalidArgument("TrainableTokensOverlap", $"Adapter '{rowing}' trains token rows that this model's tied head computes with; a modules_to_save copy of the head or the embedding would untie them. Delete that adapter first, or leave the head and the embedding out of modules_to_save.", rowing);
    }

    /// <summary>On a tied model, whether modules_to_save names the head, which is the embedding's weight until an adapter needs its own copy.</summary>
    bool SavesTiedHead(IReadOnlyList<string>? modulesToSave) => _model.TieWordEmbeddings && LoraConfig.SavesModule(modulesToSave, FamilyLayoutHead);

    /// <summary>
    /// Whether the config's modules_to_save copies one side of a tied head/embedding pair. PEFT deep-copies the
    /// named module, so the other side keeps the base weight: a copied lm_head leaves the embedding as it was, a
    /// copied embedding leaves the head on the base weight. Here the model unties its head for such an adapter.
    /// </summary>
    bool CopiesTiedSide(LoraConfig config)
        => config.ModulesToSave is { Count: > 0 } m && (LoraConfig.SavesModule(m, FamilyLayoutHead) || LoraConfig.SavesModule(m, _model.EmbeddingSlot().Path));

    bool _headUntied; // the model's head was untied for an adapter (and is tied again when none needs it)

    /// <summary>The LoRA-wrapped token embedding, when an adapter targets it.</summary>
    public (string Path, LoraEmbedding Layer)? EmbeddingLayer()
        => _model.EmbeddingSlot() is { Module: LoraEmbedding wrapped } slot ? (slot.Path, wrapped) : null;

    /// <summary>The token embedding with trained rows (trainable_token_indices), when an adapter has them.</summary>
    public (string Path, TrainableTokensEmbedding Layer)? TokenRowsLayer()
        => _model.EmbeddingSlot() is { Module: TrainableTokensEmbedding wrapped } slot ? (slot.Path, wrapped) : null;

    /// <summary>Whether the adapter trains token rows of the embedding.</summary>
    public bool HasTokenRows(string name) => TokenRowsLayer()?.Layer.Adapters.Contains(name) == true;


    /// <summary>Injects a new adapter and makes it the active one. <paramref name="seed"/> fixes the random init.</summary>
    public void Add(string name, LoraConfig config, long? seed = null)
    {
        CheckName(name);
        // A config built without a task (LoraConfig's default) takes the model's, as PEFT's get_peft_model is told it.
        if (config.TaskType == new LoraConfig().TaskType) config = config with { TaskType = _model.PeftTaskType };
        if (_configs.ContainsKey(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterExists",
                $"The model already has an adapter named '{name}'. Choose another -Name or remove it first.", name);
        var plan = Plan(config);
        if (config.Init == LoraInit.Pissa && _model.QuantizedProjections().Any())
            throw LoraShellException.InvalidArgument("PissaOnQuantizedBase",
                $"PiSSA moves the principal part of each weight into the adapter and leaves the residual as the base, but this base is stored {_model.Format.Quantization}: " +
                "the residual would have to be quantized again (more rounding than the base had). Use the default initialization on a quantized base, or import it without -Quantization for PiSSA.", config.Init);
        if (seed is long s) manual_seed(s);
        // Without a seed the factors come from wherever the global generator stands: not reproducible, so a
        // training run re-draws them from its own seed before the first step (PiSSA draws nothing).
        if (seed is null && config.Init != LoraInit.Pissa) _unseeded.Add(name); else _unseeded.Remove(name);
        var slots = _model.LinearSlots().ToDictionary(x => x.Path);
        var embedding = _model.EmbeddingSlot();
        foreach (var item in plan)
        {
            if (item.ModulePath == embedding.Path)
            {
                if (embedding.Module is not LoraEmbedding wrapped)
                {
                    wrapped = new LoraEmbedding(embedding.Base);
                    wrapped.train(_model.Module.training);
                    embedding.Host.ReplaceEmbeddingLookup(wrapped);
                }
                wrapped.AddAdapter(name, item.Rank, item.Scaling, config.Init);
                continue;
            }
            var slot = slots[item.ModulePath];
            if (slot.Module is not LoraLinear wrapper)
            {
                wrapper = new LoraLinear((Projection)slot.Module);
                wrapper.train(_model.Module.training); // a new module starts in training mode; follow the model
                slot.Host.ReplaceProjection(slot.Name, wrapper);
            }
            wrapper.AddAdapter(name, item.Rank, item.Scaling, config.LoraDropout, config.Init, LoraVariant.For(config.UseDora));
        }
        if (TrainableTokenTargets.Resolve(_model, config) is long[] rows)
        {
            if (embedding.Module is not TrainableTokensEmbedding tokens)
            {
                tokens = new TrainableTokensEmbedding(embedding.Base);
                tokens.train(_model.Module.training);
                embedding.Host.ReplaceEmbeddingLookup(tokens);
            }
            tokens.AddAdapter(name, rows);
        }
        _order.Add(name);
        if (_model.TieWordEmbeddings && CopiesTiedSide(config)) _headUntied |= _model.UntieHead();
        _savedModules.Add(name, ModulesToSaveParameters(config));
        // As PEFT does, fan_in_fan_out follows the layers: true for GPT-2's Conv1D, false for Linear.
        bool fanInFanOut = plan.Where(p => slots.ContainsKey(p.ModulePath)).All(p => ProjectionSlots.BaseOf(slots[p.ModulePath].Module).FanInFanOut);
        _configs[name] = TargetMatcher.Expand(config, plan.Select(p => p.ModulePath)) with { FanInFanOut = fanInFanOut };
        SetActive(name);
    }

    /// <summary>Longest adapter name: it becomes a folder name (PEFT saves non-default adapters in a subfolder named after them).</summary>
    public const int MaxNameLength = 64;

    /// <summary>
    /// An adapter name becomes a module key and a folder name: 1 to 64 letters, digits, '_' or '-' (no dot,
    /// which would split module paths, no separator, control character or NUL).
    /// </summary>
    public static void CheckName(string? name)
    {
        bool ok = !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');
        if (!ok)
            throw LoraShellException.InvalidArgument("InvalidAdapterName",
                $"Adapter name '{Printable(name ?? "")}' is not valid: use 1 to {MaxNameLength} letters, digits, '_' or '-' (it becomes a module key and a folder name).", Printable(name ?? ""));
    }

    /// <summary>The name with control characters shown as escapes, so an error message stays one readable line.</summary>
    static string Printable(string name)
    {
        string shown = string.Concat(name.Take(80).Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
        return name.Length > 80 ? shown + $"… ({name.Length} characters)" : shown;
    }

    /// <summary>Makes the named adapters (and only them) active.</summary>
    public void SetActive(params string[] names)
    {
        foreach (var n in names) if (!_configs.ContainsKey(n)) throw NotFound(n);
        var saving = names.Where(_savedModules.Has).ToList();
        if (saving.Count > 1)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "ModulesToSaveConflict",
                $"Adapters {string.Join(" and ", saving)} each keep their own copy of modules_to_save modules, and a module computes with one copy at a time (PEFT refuses this too); activate one of them.", saving);
        var rowing = names.Where(HasTokenRows).ToList();
        if (rowing.Count > 1)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "TrainableTokensConflict",
                $"Adapters {string.Join(" and ", rowing)} each train their own token rows, and the embedding computes with one adapter's rows at a time (PEFT refuses this too); activate one of them.", rowing);
        ActiveNames = names.ToList();
        foreach (var (_, layer) in Layers()) layer.SetActive(names);
        EmbeddingLayer()?.Layer.SetActive(names);
        TokenRowsLayer()?.Layer.SetActive(names);
        SyncSavedModules();
    }

    /// <summary>The model's modules_to_save parameters hold the active adapter's copy, or the base values when disabled or none has one.</summary>
    void SyncSavedModules()
    {
        var parameters = new Lazy<Dictionary<string, Parameter>>(() => _model.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal));
        _savedModules.MakeLive(Disabled ? null : ActiveNames.FirstOrDefault(_savedModules.Has), n => parameters.Value[n]);
    }

    /// <summary>Base model only (merged adapters are unmerged first, as PEFT's disable does).</summary>
    public void Disable()
    {
        if (MergedNames.Count > 0) Unmerge();
        Disabled = true;
        foreach (var (_, layer) in Layers()) layer.AdaptersDisabled = true;
        if (EmbeddingLayer() is { } e) e.Layer.AdaptersDisabled = true;
        if (TokenRowsLayer() is { } t) t.Layer.AdaptersDisabled = true;
        SyncSavedModules();
    }

    public void Enable()
    {
        Disabled = false;
        foreach (var (_, layer) in Layers()) layer.AdaptersDisabled = false;
        if (EmbeddingLayer() is { } e) e.Layer.AdaptersDisabled = false;
        if (TokenRowsLayer() is { } t) t.Layer.AdaptersDisabled = false;
        SyncSavedModules();
    }

    readonly HashSet<string> _unseeded = new(StringComparer.Ordinal);

    /// <summary>Whether the adapter's factors were drawn without a seed and have not been trained or loaded since.</summary>
    public bool HasUnseededInitialization(string name) => _unseeded.Contains(name);

    /// <summary>The adapter's factors are data now (trained, or read from a file): never to be re-drawn.</summary>
    public void KeepInitialization(string name) => _unseeded.Remove(name);

    /// <summary>Draws the adapter's factors again from <paramref name="seed"/>, exactly as <see cref="Add"/> with that seed would have.</summary>
    public void Reinitialize(string name, long seed)
    {
        var config = ConfigOf(name);
        manual_seed(seed);
        foreach (var (_, layer) in Layers().Where(l => l.Layer.Adapters.Contains(name)).ToList()) layer.ResetAdapter(name, config.Init);
        if (EmbeddingLayer() is { } e && e.Layer.Adapters.Contains(name)) e.Layer.ResetAdapter(name, config.Init);
        if (HasTokenRows(name)) TokenRowsLayer()!.Value.Layer.ResetAdapter(name);
        _unseeded.Remove(name);
    }

    public void Delete(string name)
    {
        if (!_configs.ContainsKey(name)) throw NotFound(name);
        if (MergedNames.Contains(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterMerged", $"Adapter '{name}' is merged into the base weights; unmerge before deleting it.", name);
        foreach (var (_, layer) in Layers().Where(l => l.Layer.Adapters.Contains(name)).ToList()) layer.DeleteAdapter(name);
        if (EmbeddingLayer() is { } e && e.Layer.Adapters.Contains(name)) e.Layer.DeleteAdapter(name);
        if (TokenRowsLayer() is { } t && t.Layer.Adapters.Contains(name))
        {
            t.Layer.DeleteAdapter(name);
            if (t.Layer.Adapters.Count == 0) _model.EmbeddingSlot().Host.ReplaceEmbeddingLookup(t.Layer.base_layer); // the embedding is free for LoRA again
        }
        _order.Remove(name);
        _configs.Remove(name);
        _unseeded.Remove(name);
        ActiveNames = ActiveNames.Where(n => n != name).ToList();
        if (_savedModules.Live == name) SyncSavedModules(); // its module goes back to the base values
        _savedModules.Remove(name);
        // The head was untied for copies of it or of the embedding: tied again when no adapter keeps one and it still equals the embedding.
        if (_headUntied && !_configs.Values.Any(CopiesTiedSide) && _model.RetieHead())
        {
            _headUntied = false;
            _savedModules.Forget($"{FamilyLayoutHead}.weight"); // the model has no such parameter any more
        }
    }

    /// <summary>Adapters that are merged now.</summary>
    public IReadOnlyList<string> MergedNames => _order.Where(n => Layers().Any(l => l.Layer.Merged.Contains(n)) || EmbeddingLayer()?.Layer.Merged.Contains(n) == true
        || TokenRowsLayer()?.Layer.Merged.Contains(n) == true).ToList();

    /// <summary>
    /// Folds the named (default: active) adapters into W0. Returns the names that were merged now;
    /// ones merged already are skipped (the caller warns).
    /// </summary>
    public List<string> Merge(IReadOnlyList<string>? names, bool safe)
    {
        var (toMerge, _) = MergeTargets(names);
        var done = new List<string>();
        foreach (var n in toMerge)
        {
            bool any = false;
            foreach (var (_, layer) in Layers().Where(l => l.Layer.Adapters.Contains(n))) any |= layer.Merge(n, safe);
            if (EmbeddingLayer() is { } e && e.Layer.Adapters.Contains(n))
            {
                // PEFT merges into the shared tensor, so a tied head changes too and the merged model no longer
                // computes what the unmerged one did; refused rather than followed.
                if (_model.TieWordEmbeddings)
                    throw new LoraShellException(LoraErrorKind.InvalidOperation, "MergeWouldChangeTiedHead",
                        $"Adapter '{n}' adapts the embedding '{e.Path}', whose weight is also this model's output head (tie_word_embeddings): merging would change the head too, unlike the unmerged adapter. Keep it unmerged, or save it and merge in a model with an untied head.", n);
                any |= e.Layer.Merge(n, safe);
            }
            // Written into the embedding weight; a tied head computes with those rows already, so the merged model computes as the unmerged one.
            if (HasTokenRows(n)) any |= TokenRowsLayer()!.Value.Layer.Merge(n, safe);
            if (any) done.Add(n);
        }
        return done;
    }

    /// <summary>
    /// The adapters a merge of <paramref name="names"/> (default: the active ones) would fold in, and
    /// those among them that are merged already (merging twice would add them twice).
    /// </summary>
    public (List<string> ToMerge, List<string> AlreadyMerged) MergeTargets(IReadOnlyList<string>? names)
    {
        var chosen = names is { Count: > 0 } ? names.Distinct().ToList() : ActiveNames.ToList();
        if (chosen.Count == 0) throw new LoraShellException(LoraErrorKind.InvalidOperation, "NoAdapterToMerge", "The model has no active adapter to merge; add or import one first.");
        foreach (var n in chosen) if (!_configs.ContainsKey(n)) throw NotFound(n);
        var merged = MergedNames;
        return (chosen.Where(n => !merged.Contains(n)).ToList(), chosen.Where(merged.Contains).ToList());
    }

    /// <summary>
    /// PEFT's merge_and_unload after a merge: every LoRA layer gives its base (merged adapters folded in)
    /// back to the model, which becomes a plain model with no adapter. Returns the adapters that were not
    /// merged and are dropped.
    /// </summary>
    public List<string> Unload()
    {
        var merged = MergedNames;
        var dropped = _order.Where(n => !merged.Contains(n)).ToList();
        foreach (var slot in _model.LinearSlots().Where(s => s.Module is LoraLinear).ToList())
            slot.Host.ReplaceProjection(slot.Name, ((LoraLinear)slot.Module).Unwrap());
        if (EmbeddingLayer() is { } e) _model.EmbeddingSlot().Host.ReplaceEmbeddingLookup(e.Layer.base_layer);
        if (TokenRowsLayer() is { } t) _model.EmbeddingSlot().Host.ReplaceEmbeddingLookup(t.Layer.Unwrap());
        _savedModules.Dispose(); // as merge_and_unload, the active adapter's copy stays as the module
        // An untied head stays untied when it now differs from the embedding (a copy of either was live): the config says so.
        if (_headUntied) { _model.RetieHead(); _headUntied = false; }
        _order.Clear();
        _configs.Clear();
        ActiveNames = Array.Empty<string>();
        Disabled = false;
        return dropped;
    }

    public void Unmerge()
    {
        foreach (var (_, layer) in Layers()) layer.Unmerge();
        EmbeddingLayer()?.Layer.Unmerge();
        TokenRowsLayer()?.Layer.Unmerge();
    }

    /// <summary>
    /// Freezes everything, then makes trainable: the named adapter's A and B, biases per its bias mode
    /// ("all": every bias; "lora_only": biases of wrapped layers), and its modules_to_save.
    /// </summary>
    public void MarkTrainable(string name)
    {
        var config = ConfigOf(name);
        foreach (var p in _model.Module.parameters()) p.requires_grad = false;
        foreach (var (path, layer) in Layers().Where(l => l.Layer.Adapters.Contains(name)))
        {
            layer.lora_A[name].weight!.requires_grad = true;
            layer.lora_B[name].weight!.requires_grad = true;
            foreach (var (_, p) in layer.Variant(name).ExtraParameters(layer, path, name)) p.requires_grad = true;
        }
        if (EmbeddingLayer() is { } e && e.Layer.Adapters.Contains(name))
        {
            e.Layer.lora_embedding_A[name].requires_grad = true;
            e.Layer.lora_embedding_B[name].requires_grad = true;
        }
        if (HasTokenRows(name)) TokenRowsLayer()!.Value.Layer.Rows(name).requires_grad = true;
        foreach (var (_, p) in TrainedBiases(name)) p.requires_grad = true;
        foreach (var (_, p) in ModulesToSaveParameters(config)) p.requires_grad = true;
    }

    /// <summary>
    /// The biases an adapter trains and saves, by its bias mode, with their HF names (a wrapped layer's
    /// <c>PATH.base_layer.bias</c> is <c>PATH.bias</c>): "all" every bias of the model, "lora_only" the
    /// biases of the layers it wraps, "none" none.
    /// </summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainedBiases(string name)
    {
        var config = ConfigOf(name);
        if (config.Bias == "none") yield break;
        var wrapped = Layers().Where(l => l.Layer.Adapters.Contains(name)).Select(l => l.Path + ".bias").ToHashSet(StringComparer.Ordinal);
        foreach (var (pname, p) in _model.Module.named_parameters())
        {
            if (!pname.EndsWith(".bias", StringComparison.Ordinal)) continue;
            string hfName = PeftKeys.WithoutBaseLayer(pname);
            if (config.Bias == "all" || wrapped.Contains(hfName)) yield return (hfName, p);
        }
    }

    /// <summary>
    /// An adapter's modules_to_save tensors by HF name, as it saves and loads them: the model's parameters
    /// while its copy is live, its stored copy otherwise.
    /// </summary>
    public IEnumerable<(string Name, Tensor Tensor)> SavedModuleTensors(string name)
        => ModulesToSaveParameters(ConfigOf(name)).Select(p => (p.Name, _savedModules.Has(name) ? _savedModules.Value(name, p.Name, p.Parameter) : (Tensor)p.Parameter));

    /// <summary>
    /// Parameters of the modules listed in modules_to_save, with their HF names. A module is listed when its
    /// path ends with an entry — as plain text, as PEFT's _set_trainable matches (key.endswith(target_key)),
    /// so "norm" takes model.norm and every layer's *_layernorm alike.
    /// </summary>
    public IEnumerable<(string Name, Parameter Parameter)> ModulesToSaveParameters(LoraConfig config)
    {
        if (config.ModulesToSave is null) yield break;
        foreach (var (pname, p) in _model.Module.named_parameters())
        {
            string module = pname[..pname.LastIndexOf('.')];
            if (LoraConfig.SavesModule(config.ModulesToSave, module))
                yield return (pname, p);
        }
    }

    public TrainableSummary Summary()
    {
        long trainable = 0, all = 0;
        foreach (var p in _model.Module.parameters())
        {
            all += p.numel();
            if (p.requires_grad) trainable += p.numel();
        }
        return new TrainableSummary(trainable, all);
    }

    public AdapterInfo Info(string name)
    {
        var config = ConfigOf(name);
        var layers = Layers().Where(l => l.Layer.Adapters.Contains(name)).ToList();
        var embedding = EmbeddingLayer() is { } e && e.Layer.Adapters.Contains(name) ? e : ((string Path, LoraEmbedding Layer)?)null;
        long trainable = layers.Sum(l => l.Layer.Variant(name).TrainableParameters(l.Layer.InFeatures, l.Layer.OutFeatures, l.Layer.Rank(name)))
            + (embedding is { } emb ? emb.Layer.lora_embedding_A[name].numel() + emb.Layer.lora_embedding_B[name].numel() : 0)
            + (HasTokenRows(name) ? TokenRowsLayer()!.Value.Layer.Rows(name).numel() : 0);
        var paths = layers.Select(l => l.Path).Concat(embedding is { } em ? new[] { em.Path } : Array.Empty<string>()).ToList();
        var targets = paths.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct().ToList();
        bool merged = (layers.Count > 0 || embedding is not null) && layers.All(l => l.Layer.Merged.Contains(name)) && embedding?.Layer.Merged.Contains(name) != false
            && (!HasTokenRows(name) || TokenRowsLayer()!.Value.Layer.Merged.Contains(name));
        return new AdapterInfo(name, config.R, config.LoraAlpha, config.ScalingFor(layers.FirstOrDefault().Path ?? ""),
            targets, paths, trainable, _model.Module.parameters().Sum(p => p.numel()),
            merged, !Disabled && ActiveNames.Contains(name), config)
        { TrainableTokens = HasTokenRows(name) ? TokenRowsLayer()!.Value.Layer.Indices(name).Count : 0 };
    }
}
