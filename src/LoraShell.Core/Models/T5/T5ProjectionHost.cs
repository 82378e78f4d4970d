using LoraShell.Core.Models.Blocks;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// A T5 module that owns named bias-free projections (q, k, v, o; wi, wi_0, wi_1, wo) registered under
/// their HF names, any of which LoRA can swap for its wrapper in place.
/// </summary>
public abstract class T5ProjectionHost : nn.Module, ILinearHost
{
    readonly List<string> _names = new();
    readonly Dictionary<string, nn.Module<Tensor, Tensor>> _modules = new(StringComparer.Ordinal);

    protected T5ProjectionHost(string typeName) : base(typeName) { }

    protected void AddProjection(string name, long inFeatures, long outFeatures)
    {
        var module = new LinearProjection(inFeatures, outFeatures, hasBias: false);
        _names.Add(name);
        _modules[name] = module;
        register_module(name, module);
    }

    protected nn.Module<Tensor, Tensor> Get(string name) => _modules[name];

    protected bool Has(string name) => _modules.ContainsKey(name);

    // Children are registered explicitly under their HF names (see Blocks.ProjectionHost).
    protected override void RegisterComponents() { }

    public IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections => _names.Select(n => (n, _modules[n]));

    public void ReplaceProjection(string name, nn.Module<Tensor, Tensor> replacement)
    {
        if (!_modules.ContainsKey(name)) throw new ArgumentException($"{GetName()} has no projection '{name}'.", nameof(name));
        _modules[name] = replacement;
        register_module(name, null!);
        register_module(name, replacement);
    }
}
