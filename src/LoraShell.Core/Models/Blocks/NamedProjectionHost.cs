using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// A module that owns named projections registered under their HF names (q_proj, c_attn, T5's q or wi_0),
/// in the order they were added, any of which can be swapped for a wrapper (a LoRA layer) in place.
/// </summary>
public abstract class NamedProjectionHost : nn.Module, ILinearHost
{
    readonly List<string> _order = new();
    readonly Dictionary<string, nn.Module<Tensor, Tensor>> _modules = new(StringComparer.Ordinal);

    protected NamedProjectionHost(string typeName) : base(typeName) { }

    protected void AddProjection(string name, nn.Module<Tensor, Tensor> module)
    {
        _order.Add(name);
        _modules[name] = module;
        register_module(name, module);
    }

    /// <summary>The projection registered as <paramref name="name"/> (or the wrapper that replaced it).</summary>
    protected nn.Module<Tensor, Tensor> Projection(string name) => _modules[name];

    protected bool HasProjection(string name) => _modules.ContainsKey(name);

    // Children are registered explicitly under their HF names; TorchSharp's registration by field name
    // (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections => _order.Select(n => (n, _modules[n]));

    public void ReplaceProjection(string name, nn.Module<Tensor, Tensor> replacement)
    {
        if (!_modules.ContainsKey(name)) throw new ArgumentException($"{GetName()} has no projection '{name}'.", nameof(name));
        _modules[name] = replacement;
        register_module(name, null!);
        register_module(name, replacement);
    }
}
