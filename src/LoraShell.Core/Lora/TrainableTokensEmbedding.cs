using LoraShell.Core.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// PEFT's <c>trainable_token_indices</c> (a TrainableTokensLayer inside a TrainableTokensWrapper): per adapter,
/// the embedding rows of a few token ids are trained and the rest of the vocabulary stays frozen — what a
/// user needs after adding chat tokens. As PEFT, the adapter holds the rows' new <em>values</em>
/// (<c>trainable_tokens_delta</c> [n, dim], despite the name), starting as copies of the base rows, and the
/// lookup uses them in place of the base rows; merge writes them into the weight, unmerge writes the
/// originals back. A tied output head sees the same rows (<see cref="ITiedHeadRows"/>), as PEFT ties a
/// token adapter to the head. One adapter with tokens computes at a time. State-dict names are PEFT's:
/// <c>base_layer.weight</c>, <c>token_adapter.trainable_tokens_delta.NAME</c>.
/// </summary>
public sealed class TrainableTokensEmbedding : nn.Module<Tensor, Tensor>, ITiedHeadRows
{
    public Embedding base_layer;
    public TokenAdapter token_adapter = new();
    readonly Dictionary<string, long[]> _indices = new(StringComparer.Ordinal);
    readonly Dictionary<string, Tensor> _originals = new(StringComparer.Ordinal);
    readonly Dictionary<string, Tensor> _rowOf = new(StringComparer.Ordinal); // [vocab] long: the delta row of each id, -1 elsewhere
    readonly List<string> _merged = new();
    string? _active;

    public TrainableTokensEmbedding(Embedding baseLayer) : base(nameof(TrainableTokensEmbedding))
    {
        base_layer = baseLayer;
        RegisterComponents();
    }

    public long NumEmbeddings => base_layer.weight!.shape[0];
    public long EmbeddingDim => base_layer.weight!.shape[1];
    public IReadOnlyList<string> Adapters => _indices.Keys.ToList();
    public IReadOnlyList<string> Merged => _merged;
    public bool AdaptersDisabled { get; set; }
    public IReadOnlyList<long> Indices(string name) => _indices[name];
    public Parameter Rows(string name) => token_adapter.trainable_tokens_delta[name];

    /// <summary>The adapter whose rows the lookup uses now: active, not merged (then the weight has them), not disabled.</summary>
    string? Computing => AdaptersDisabled || _active is null || _merged.Contains(_active) ? null : _active;

    public void AddAdapter(string name, IReadOnlyList<long> indices)
    {
        var device = base_layer.weight!.device;
        using var _ = no_grad();
        using var index = tensor(indices.ToArray(), device: device);
        // As PEFT's update_layer with init_weights: the rows start as the base rows, so the adapter changes nothing yet.
        var original = base_layer.weight!.index_select(0, index).to(ScalarType.Float32).DetachFromDisposeScope();
        var rows = new Parameter(original.clone());
        var rowOf = full(NumEmbeddings, -1L, ScalarType.Int64, device: device);
        rowOf.index_copy_(0, index, arange(indices.Count, ScalarType.Int64, device: device));
        token_adapter.Set(name, rows);
        _indices[name] = indices.ToArray();
        _originals[name] = original;
        _rowOf[name] = rowOf.DetachFromDisposeScope();
    }

    public void DeleteAdapter(string name)
    {
        if (_merged.Contains(name)) throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it first");
        token_adapter.Remove(name);
        _indices.Remove(name);
        if (_originals.Remove(name, out var o)) o.Dispose();
        if (_rowOf.Remove(name, out var r)) r.Dispose();
        if (_active == name) _active = null;
    }

    /// <summary>The first of <paramref name="names"/> that has token rows becomes the one the lookup uses (the caller refuses two).</summary>
    public void SetActive(IEnumerable<string> names) => _active = names.FirstOrDefault(_indices.ContainsKey);

    public override Tensor forward(Tensor ids)
    {
        var result = base_layer.call(ids);
        if (Computing is not string name) return result;
        // Each position whose id is trained takes its row from the adapter; only those positions send gradient there.
        var row = _rowOf[name].index_select(0, ids.flatten()).view(ids.shape);
        var rows = Rows(name).index_select(0, row.clamp_min(0).flatten()).view(ids.shape.Append(EmbeddingDim).ToArray());
        return where(row.ge(0).unsqueeze(-1), rows.to(result.dtype), result);
    }

    /// <summary>A tied head's logits with the trained rows' columns computed from the adapter's rows (PEFT's tied TrainableTokensLayer on lm_head).</summary>
    public Tensor OnTiedHead(Tensor hidden, Tensor logits)
    {
        if (Computing is not string name) return logits;
        using var index = tensor(_indices[name], device: logits.device);
        var columns = nn.functional.linear(hidden, Rows(name).to(hidden.dtype));
        return logits.index_copy(-1, index, columns.to(logits.dtype));
    }

    /// <summary>Writes the adapter's rows into the weight (PEFT's merge: index_copy; a tied head changes with it, as the unmerged adapter's does).</summary>
    public bool Merge(string name, bool safe)
    {
        if (_merged.Contains(name)) return false;
        var overlap = _merged.FirstOrDefault(m => _indices[m].Intersect(_indices[name]).Any());
        if (overlap is not null)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "TrainableTokensConflict",
                $"Adapters '{overlap}' (merged) and '{name}' train some of the same token rows ({string.Join(", ", _indices[overlap].Intersect(_indices[name]).Take(5))}); merging both would keep only the last one's (PEFT refuses this too). Merge one of them.", name);
        using var _ = no_grad();
        if (safe && !Rows(name).isfinite().all().item<bool>())
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "MergeProducedNonFinite", $"Adapter '{name}' holds NaN or Inf token rows; nothing was changed.", name);
        using var index = tensor(_indices[name], device: base_layer.weight!.device);
        base_layer.weight!.index_copy_(0, index, Rows(name).to(base_layer.weight!.dtype));
        _merged.Add(name);
        return true;
    }

    /// <summary>Writes the base rows back (PEFT's unmerge: the originals kept when the adapter was added).</summary>
    public void Unmerge()
    {
        using var _ = no_grad();
        for (int i = _merged.Count - 1; i >= 0; i--)
        {
            using var index = tensor(_indices[_merged[i]], device: base_layer.weight!.device);
            base_layer.weight!.index_copy_(0, index, _originals[_merged[i]].to(base_layer.weight!.dtype));
        }
        _merged.Clear();
    }

    /// <summary>Starts the adapter's rows again from the base rows, as <see cref="AddAdapter"/> did (nothing random).</summary>
    public void ResetAdapter(string name)
    {
        using var _ = no_grad();
        Rows(name).copy_(_originals[name]);
    }

    /// <summary>merge_and_unload: the embedding (with whatever is merged into it) goes back to the model; the adapters' rows are freed.</summary>
    public Embedding Unwrap()
    {
        foreach (var name in Adapters) { _merged.Remove(name); DeleteAdapter(name); }
        return base_layer;
    }

    /// <summary>The base rows the adapter started from (what unmerge writes back).</summary>
    public Tensor Originals(string name) => _originals[name];

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var t in _originals.Values.Concat(_rowOf.Values)) t.Dispose();
            _originals.Clear();
            _rowOf.Clear();
        }
        base.Dispose(disposing);
    }
}

/// <summary>PEFT's <c>token_adapter</c> submodule: it registers the rows as <c>trainable_tokens_delta.NAME</c>.</summary>
public sealed class TokenAdapter : nn.Module
{
    public FactorSet trainable_tokens_delta = new();

    public TokenAdapter() : base(nameof(TokenAdapter)) => RegisterComponents();

    internal void Set(string name, Parameter rows) => Rebuild(trainable_tokens_delta.With(name, rows));
    internal void Remove(string name) => Rebuild(trainable_tokens_delta.Without(name));

    void Rebuild(FactorSet set)
    {
        register_module(nameof(trainable_tokens_delta), null!);
        register_module(nameof(trainable_tokens_delta), set);
        trainable_tokens_delta = set;
    }
}
