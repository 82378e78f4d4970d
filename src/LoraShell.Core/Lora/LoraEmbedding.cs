using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// LoRA on the token embedding, as PEFT's <c>lora.Embedding</c>: A [r, num_embeddings] and B [dim, r] per
/// adapter, y = W[x] + s·(Aᵀ[x])·Bᵀ, merged as W += s·(B·A)ᵀ. PEFT starts A at zero and B normal — the
/// reverse of a Linear's. State-dict names are PEFT's: <c>base_layer.weight</c>, <c>lora_embedding_A.NAME</c>,
/// <c>lora_embedding_B.NAME</c>. A tied output head keeps computing with the base weight W, as in PEFT.
/// </summary>
public sealed class LoraEmbedding : nn.Module<Tensor, Tensor>
{
    public Embedding base_layer;
    public FactorSet lora_embedding_A = new(), lora_embedding_B = new();
    readonly Dictionary<string, double> _scaling = new(StringComparer.Ordinal);
    readonly List<string> _merged = new();
    List<string> _active = new();

    public LoraEmbedding(Embedding baseLayer) : base(nameof(LoraEmbedding))
    {
        base_layer = baseLayer;
        RegisterComponents();
    }

    public long NumEmbeddings => base_layer.weight!.shape[0];
    public long EmbeddingDim => base_layer.weight!.shape[1];
    public IReadOnlyList<string> Adapters => _scaling.Keys.ToList();
    public IReadOnlyList<string> Merged => _merged;
    public bool AdaptersDisabled { get; set; }
    public double Scaling(string name) => _scaling[name];
    public int Rank(string name) => (int)lora_embedding_A[name].shape[0];

    public void AddAdapter(string name, int rank, double scaling, LoraInit init)
    {
        var device = base_layer.weight!.device;
        var a = new Parameter(zeros(rank, NumEmbeddings, device: device));
        var b = new Parameter(zeros(EmbeddingDim, rank, device: device));
        using (no_grad())
        {
            switch (init)
            {
                case LoraInit.Default or LoraInit.Gaussian:
                    nn.init.normal_(b); // PEFT's reset_lora_parameters for embeddings: A = 0, B ~ N(0, 1)
                    break;
                case LoraInit.Random:
                    nn.init.normal_(a);
                    nn.init.normal_(b);
                    break;
                default:
                    throw LoraShellException.InvalidArgument("InitNotForEmbedding", $"Init {init} applies to Linear layers; LoRA on the embedding starts as PEFT's does (A = 0, B random).", init);
            }
        }
        lora_embedding_A = Rebuild(nameof(lora_embedding_A), lora_embedding_A.With(name, a));
        lora_embedding_B = Rebuild(nameof(lora_embedding_B), lora_embedding_B.With(name, b));
        _scaling[name] = scaling;
    }

    public void DeleteAdapter(string name)
    {
        if (_merged.Contains(name)) throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it first");
        lora_embedding_A = Rebuild(nameof(lora_embedding_A), lora_embedding_A.Without(name));
        lora_embedding_B = Rebuild(nameof(lora_embedding_B), lora_embedding_B.Without(name));
        _scaling.Remove(name);
        _active.Remove(name);
    }

    FactorSet Rebuild(string field, FactorSet set)
    {
        register_module(field, null!);
        register_module(field, set);
        return set;
    }

    public void SetActive(IEnumerable<string> names) => _active = names.Where(_scaling.ContainsKey).ToList();

    public override Tensor forward(Tensor ids)
    {
        var result = base_layer.call(ids);
        if (AdaptersDisabled) return result;
        foreach (var name in _active)
        {
            if (_merged.Contains(name)) continue;
            var a = lora_embedding_A[name];
            var picked = a.t().index_select(0, ids.flatten()).view(ids.shape.Append(a.shape[0]).ToArray()); // Aᵀ[x], [..., r]
            result = result + (picked.matmul(lora_embedding_B[name].t()) * _scaling[name]).to(result.dtype);
        }
        return result;
    }

    /// <summary>s·(B·A)ᵀ, [num_embeddings, dim] float32: what merging adds to W.</summary>
    public Tensor DeltaWeight(string name) => lora_embedding_B[name].matmul(lora_embedding_A[name]).t() * _scaling[name];

    public bool Merge(string name, bool safe)
    {
        if (_merged.Contains(name)) return false;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var merged = base_layer.weight!.to(ScalarType.Float32) + DeltaWeight(name);
        if (safe && !merged.isfinite().all().item<bool>())
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "MergeProducedNonFinite", $"Merging adapter '{name}' would put NaN or Inf into the embedding; nothing was changed.", name);
        base_layer.weight!.copy_(merged);
        _merged.Add(name);
        return true;
    }

    public void Unmerge()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int i = _merged.Count - 1; i >= 0; i--)
            base_layer.weight!.copy_(base_layer.weight!.to(ScalarType.Float32) - DeltaWeight(_merged[i]));
        _merged.Clear();
    }

    /// <summary>Draws an adapter again as <see cref="AddAdapter"/> did, keeping where it was active.</summary>
    public void ResetAdapter(string name, LoraInit init)
    {
        int rank = Rank(name), active = _active.IndexOf(name);
        double scaling = _scaling[name];
        DeleteAdapter(name);
        AddAdapter(name, rank, scaling, init);
        if (active >= 0) _active.Insert(active, name);
    }
}

/// <summary>Parameters keyed by adapter name, registered under that name (PEFT's ParameterDict: <c>lora_embedding_A.NAME</c>).</summary>
public sealed class FactorSet : nn.Module
{
    readonly Dictionary<string, Parameter> _items;

    public FactorSet() : this(new Dictionary<string, Parameter>(StringComparer.Ordinal)) { }

    FactorSet(Dictionary<string, Parameter> items) : base(nameof(FactorSet))
    {
        _items = items;
        foreach (var (name, p) in items) register_parameter(name, p);
    }

    protected override void RegisterComponents() { }

    public Parameter this[string name] => _items[name];
    public bool Contains(string name) => _items.ContainsKey(name);
    public FactorSet With(string name, Parameter p) => new(new Dictionary<string, Parameter>(_items, StringComparer.Ordinal) { [name] = p });
    public FactorSet Without(string name)
    {
        var rest = new Dictionary<string, Parameter>(_items, StringComparer.Ordinal);
        if (rest.Remove(name, out var gone)) gone.Dispose();
        return new FactorSet(rest);
    }
}
