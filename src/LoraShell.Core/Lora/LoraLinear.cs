using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// A frozen projection (Linear, GPT-2's Conv1D or a quantized base) with one or more named low-rank adapters beside it:
/// y = W0·x (+ b) + Σ_active scaling·B·A·dropout(x), A [r, in], B [out, r]; how an adapter computes and
/// merges is its <see cref="LoraVariant"/> (plain LoRA, or DoRA with its magnitude m [out]).
/// State-dict names follow PEFT: <c>base_layer.weight</c>, <c>lora_A.NAME.weight</c>, <c>lora_B.NAME.weight</c>,
/// <c>lora_magnitude_vector.NAME.weight</c>.
/// The base projection is the original module (its weight is shared, never copied). Adapter factors are
/// float32 whatever the base dtype, as PEFT's autocast_adapter_dtype does. For a Conv1D base (PEFT's
/// fan_in_fan_out) A and B keep the same shapes and the same forward; only merging transposes B·A
/// into the base's [in, out] storage, which <see cref="Projection.SetDenseWeight"/> does.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>, IWrappedProjection
{
    public Projection base_layer;
    public ModuleDict<Linear> lora_A = nn.ModuleDict<Linear>();
    public ModuleDict<Linear> lora_B = nn.ModuleDict<Linear>();
    public ModuleDict<DoraMagnitude> lora_magnitude_vector = nn.ModuleDict<DoraMagnitude>();
    readonly Dictionary<string, (double Scaling, double Dropout, LoraVariant Variant)> _settings = new(StringComparer.Ordinal);
    readonly List<string> _merged = new();
    readonly Dictionary<string, Linear> _a = new(StringComparer.Ordinal), _b = new(StringComparer.Ordinal);
    readonly Dictionary<string, DoraMagnitude> _m = new(StringComparer.Ordinal);
    readonly Dictionary<string, Tensor> _mergeFactors = new(StringComparer.Ordinal);
    List<string> _active = new();

    public LoraLinear(Projection baseLayer) : base(nameof(LoraLinear))
    {
        base_layer = baseLayer;
        RegisterComponents();
    }

    public Projection Base => base_layer;
    public long InFeatures => base_layer.InFeatures;
    public long OutFeatures => base_layer.OutFeatures;
    public IReadOnlyList<string> Adapters => _settings.Keys.ToList();
    public IReadOnlyList<string> Merged => _merged;
    public IReadOnlyList<string> Active => _active;
    /// <summary>When set, the layer computes the base output only.</summary>
    public bool AdaptersDisabled { get; set; }
    public double Scaling(string name) => _settings[name].Scaling;
    public int Rank(string name) => (int)lora_A[name].weight!.shape[0];
    public LoraVariant Variant(string name) => _settings[name].Variant;

    public void AddAdapter(string name, int rank, double scaling, double dropout, LoraInit init, LoraVariant? variant = null)
    {
        if (_settings.ContainsKey(name)) throw new InvalidOperationException($"adapter '{name}' already exists on this layer");
        variant ??= LoraVariant.Plain;
        var device = base_layer.WeightDevice;
        var a = nn.Linear(InFeatures, rank, hasBias: false, device: device, dtype: ScalarType.Float32);
        var b = nn.Linear(rank, OutFeatures, hasBias: false, device: device, dtype: ScalarType.Float32);
        LoraInitialization.Draw(init, a.weight!, b.weight!, base_layer, rank, scaling);
        _a[name] = a;
        _b[name] = b;
        lora_A = Rebuild(nameof(lora_A), _a);
        lora_B = Rebuild(nameof(lora_B), _b);
        if (variant == LoraVariant.Dora)
        {
            _m[name] = new DoraMagnitude(OutFeatures, device);
            lora_magnitude_vector = Rebuild(nameof(lora_magnitude_vector), _m);
        }
        _settings[name] = (scaling, dropout, variant);
        variant.Init(this, name);
    }

    public void DeleteAdapter(string name)
    {
        if (_merged.Contains(name)) throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it first");
        var a = lora_A[name];
        var b = lora_B[name];
        _a.Remove(name);
        _b.Remove(name);
        lora_A = Rebuild(nameof(lora_A), _a);
        lora_B = Rebuild(nameof(lora_B), _b);
        a.Dispose();
        b.Dispose();
        if (_m.Remove(name, out var m))
        {
            lora_magnitude_vector = Rebuild(nameof(lora_magnitude_vector), _m);
            m.Dispose();
        }
        _settings.Remove(name);
        _active.Remove(name);
    }

    // TorchSharp's ModuleDict registers its entries when it is built; entries added later would not
    // appear in parameters() or state_dict(). So each change builds a new dict and re-registers it.
    ModuleDict<T> Rebuild<T>(string field, IEnumerable<KeyValuePair<string, T>> items) where T : nn.Module
    {
        var dict = nn.ModuleDict(items.Select(p => (p.Key, p.Value)).ToArray());
        register_module(field, null!);
        register_module(field, dict);
        return dict;
    }

    public void SetActive(IEnumerable<string> names) => _active = names.Where(_settings.ContainsKey).ToList();

    public override Tensor forward(Tensor x)
    {
        var result = base_layer.call(x);
        if (AdaptersDisabled) return result;
        foreach (var name in _active)
        {
            if (_merged.Contains(name)) continue;
            var (_, dropout, variant) = _settings[name];
            var h = x.to(ScalarType.Float32);
            bool dropped = dropout > 0 && training;
            if (dropped) h = nn.functional.dropout(h, dropout, training: true);
            result = variant.Forward(this, name, h, dropped, result);
        }
        return result;
    }

    /// <summary>scaling·B·A in float32, [out, in] (for DoRA, the low-rank part before the magnitude rescales the rows).</summary>
    public Tensor DeltaWeight(string name) => lora_B[name].weight!.matmul(lora_A[name].weight!) * _settings[name].Scaling;

    /// <summary>DoRA's m/‖W0 + s·B·A‖ at merge time, kept so unmerging divides by exactly what merging multiplied.</summary>
    internal void RememberMergeFactor(string name, Tensor factor)
    {
        if (_mergeFactors.Remove(name, out var old)) old.Dispose();
        _mergeFactors[name] = factor.detach().clone().DetachFromDisposeScope();
    }

    internal Tensor MergeFactor(string name) => _mergeFactors[name];

    /// <summary>
    /// Folds the adapter into W0 (in float32, whatever W0's dtype). Returns false when it was merged
    /// already. With <paramref name="safe"/>, the merged weight is checked for NaN/Inf before it replaces W0.
    /// </summary>
    public bool Merge(string name, bool safe)
    {
        if (_merged.Contains(name)) return false;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var merged = _settings[name].Variant.Merge(this, name, base_layer.DenseWeight());
        if (safe && !merged.isfinite().all().item<bool>())
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "MergeProducedNonFinite",
                $"Merging adapter '{name}' would put NaN or Inf into the base weight; nothing was changed.", name);
        base_layer.SetDenseWeight(merged);
        _merged.Add(name);
        return true;
    }

    /// <summary>
    /// Draws an adapter's factors again as <see cref="AddAdapter"/> drew them (same rank, scaling, dropout and
    /// the same random draws in the same order), so a seeded reset equals a seeded add.
    /// </summary>
    public void ResetAdapter(string name, LoraInit init)
    {
        int rank = Rank(name);
        var (scaling, dropout, variant) = _settings[name];
        int active = _active.IndexOf(name);
        DeleteAdapter(name);
        AddAdapter(name, rank, scaling, dropout, init, variant);
        if (active >= 0) _active.Insert(active, name); // drawn again, still computing where it was

    }

    /// <summary>
    /// PEFT's unload: the base layer as it computes now (with whatever is merged into it), every adapter's
    /// factors freed. The wrapper is not usable afterwards; its host takes the returned layer back.
    /// </summary>
    public Projection Unwrap()
    {
        foreach (var l in _a.Values.Concat(_b.Values)) l.Dispose();
        foreach (var m in _m.Values) m.Dispose();
        foreach (var f in _mergeFactors.Values) f.Dispose();
        _a.Clear();
        _b.Clear();
        _m.Clear();
        _mergeFactors.Clear();
        lora_A = Rebuild(nameof(lora_A), _a);
        lora_B = Rebuild(nameof(lora_B), _b);
        lora_magnitude_vector = Rebuild(nameof(lora_magnitude_vector), _m);
        _settings.Clear();
        _active.Clear();
        _merged.Clear();
        return base_layer;
    }

    /// <summary>Subtracts every merged adapter again, last merged first.</summary>
    public void Unmerge()
    {
        // A quantized base kept its codes while merged: dropping the dense weight restores it exactly,
        // where subtracting the deltas again would leave the dense weight (and its rounding) in place.
        if (base_layer is Models.Blocks.QuantizedProjection quantized) { quantized.DropDense(); _merged.Clear(); return; }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int i = _merged.Count - 1; i >= 0; i--)
            base_layer.SetDenseWeight(_settings[_merged[i]].Variant.Unmerge(this, _merged[i], base_layer.DenseWeight()));
        _merged.Clear();
    }
}
