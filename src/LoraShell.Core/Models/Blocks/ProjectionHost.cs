using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// A block that owns named projections (q_proj, c_attn, gate_up_proj, …) registered under their HF
/// names, any of which can be swapped for a wrapper (a LoRA layer) in place. The names and roles come
/// from the family's layout; forward code asks for a projection by role.
/// </summary>
public abstract class ProjectionHost : nn.Module, ILinearHost
{
    readonly List<ProjectionName> _names;
    readonly Dictionary<string, nn.Module<Tensor, Tensor>> _modules = new(StringComparer.Ordinal);

    protected ProjectionHost(string typeName, IReadOnlyList<ProjectionName> names, ModelConfig c, ProjectionStorage storage, WeightFormat format) : base(typeName)
    {
        _names = names.ToList();
        foreach (var p in _names)
        {
            var (inF, outF) = ModelFamily.Shape(p.Role, c);
            bool bias = storage == ProjectionStorage.Conv1D || c.HasBias(p.Role);
            nn.Module<Tensor, Tensor> module = format.Quantization != Quantization.BaseQuantization.None
                ? new QuantizedProjection(inF, outF, bias, format, fileTransposed: storage == ProjectionStorage.Conv1D)
                : storage == ProjectionStorage.Conv1D
                    ? new Conv1DProjection(inF, outF, format.DType, format.Initialize)
                    : new LinearProjection(inF, outF, bias, format.DType, format.Initialize);
            _modules[p.Name] = module;
            register_module(p.Name, module);
        }
    }

    protected nn.Module<Tensor, Tensor> Get(ProjectionRole role) => _modules[_names.First(n => n.Role == role).Name];

    protected bool Has(ProjectionRole role) => _names.Any(n => n.Role == role);

    // Children are registered explicitly under the family's HF names; TorchSharp's registration by
    // field name (which runs when this module is registered in its parent) would add them twice.
    protected override void RegisterComponents() { }

    public IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections => _names.Select(n => (n.Name, _modules[n.Name]));

    public IEnumerable<(ProjectionName Name, nn.Module<Tensor, Tensor> Module)> ProjectionsWithRoles => _names.Select(n => (n, _modules[n.Name]));

    public void ReplaceProjection(string name, nn.Module<Tensor, Tensor> replacement)
    {
        if (!_modules.ContainsKey(name)) throw new ArgumentException($"{GetName()} has no projection '{name}'.", nameof(name));
        _modules[name] = replacement;
        register_module(name, null!);
        register_module(name, replacement);
    }
}
