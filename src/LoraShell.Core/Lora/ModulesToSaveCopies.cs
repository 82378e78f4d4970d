using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>
/// PEFT's modules_to_save (its ModulesToSaveWrapper) without rewiring the model: each adapter that names a
/// module gets its own full copy of that module's parameters, made from the base values, and the base values
/// are kept. The model's parameters hold the copy of the one active adapter that has one (the "live" copy, which
/// training updates), or the base values when no such adapter is active or adapters are disabled. Switching
/// stores the live values back into their adapter's copy first, so nothing trained is lost, and disabling or
/// deleting an adapter gives the base module back.
/// </summary>
internal sealed class ModulesToSaveCopies : IDisposable
{
    readonly Dictionary<string, Tensor> _base = new(StringComparer.Ordinal);
    readonly Dictionary<string, Dictionary<string, Tensor>> _copies = new(StringComparer.Ordinal);
    string? _live;

    /// <summary>The adapter whose copy the model's parameters hold now, or null for the base values.</summary>
    public string? Live => _live;

    public bool Has(string adapter) => _copies.ContainsKey(adapter);

    /// <summary>A new adapter's copies of <paramref name="parameters"/>, made from the base values (not another adapter's live copy).</summary>
    public void Add(string adapter, IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        using var _ = no_grad();
        var copy = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in parameters)
        {
            if (!_base.ContainsKey(name)) _base[name] = p.detach().clone().DetachFromDisposeScope();
            copy[name] = _base[name].clone().DetachFromDisposeScope();
        }
        if (copy.Count > 0) _copies[adapter] = copy;
    }

    /// <summary>Puts <paramref name="adapter"/>'s copy (null: the base values) into the model's parameters.</summary>
    public void MakeLive(string? adapter, Func<string, Parameter> parameter)
    {
        if (adapter is not null && !_copies.ContainsKey(adapter)) adapter = null;
        if (adapter == _live) return;
        using var _ = no_grad();
        if (_live is not null)
            foreach (var (name, stored) in _copies[_live]) stored.copy_(parameter(name));
        var incoming = adapter is null ? _base : _copies[adapter];
        // Parameters the outgoing copy held but the incoming one does not name go back to their base values.
        foreach (var name in (_live is null ? Enumerable.Empty<string>() : _copies[_live].Keys).Concat(incoming.Keys).Distinct())
            parameter(name).copy_(incoming.TryGetValue(name, out var value) ? value : _base[name]);
        _live = adapter;
    }

    /// <summary>The adapter's values of one parameter: the model's own while it is live, its stored copy otherwise.</summary>
    public Tensor Value(string adapter, string name, Parameter live) => adapter == _live ? live : _copies[adapter][name];

    /// <summary>Forgets a parameter the model no longer has (a re-tied head's weight): its base values and any copy of it.</summary>
    public void Forget(string name)
    {
        if (_base.Remove(name, out var value)) value.Dispose();
        foreach (var copy in _copies.Values)
            if (copy.Remove(name, out var stored)) stored.Dispose();
    }

    /// <summary>Forgets an adapter's copies (the caller has made another copy or the base live first).</summary>
    public void Remove(string adapter)
    {
        if (_live == adapter) throw new InvalidOperationException($"adapter '{adapter}' is live; make another copy live first");
        if (!_copies.Remove(adapter, out var copy)) return;
        foreach (var t in copy.Values) t.Dispose();
        if (_copies.Count == 0) Dispose();
    }

    /// <summary>merge_and_unload: the live values stay as the model's own; every copy and the base values go.</summary>
    public void Dispose()
    {
        foreach (var t in _copies.Values.SelectMany(c => c.Values).Concat(_base.Values)) t.Dispose();
        _copies.Clear();
        _base.Clear();
        _live = null;
    }
}
