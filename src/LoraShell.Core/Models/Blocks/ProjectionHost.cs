using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// A block that owns named projections (q_proj, c_attn, gate_up_proj, …) registered under their HF
/// names, any of which can be swapped for a wrapper (a LoRA layer) in place. The names and roles come
/// from the family's layout; forward code asks for a projection by role.
/// </summary>
public abstract class ProjectionHost : NamedProjectionHost
{
    readonly List<ProjectionName> _names;

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
            AddProjection(p.Name, module);
        }
    }

    protected nn.Module<Tensor, Tensor> Get(ProjectionRole role) => Projection(_names.First(n => n.Role == role).Name);

    protected bool Has(ProjectionRole role) => _names.Any(n => n.Role == role);

    public IEnumerable<(ProjectionName Name, nn.Module<Tensor, Tensor> Module)> ProjectionsWithRoles => _names.Select(n => (n, Projection(n.Name)));
}
