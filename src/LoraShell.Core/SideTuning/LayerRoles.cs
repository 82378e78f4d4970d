using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.SideTuning;

/// <summary>
/// A decoder layer's projections by role (q, k, v, o, gate, up, down) as float32 [out, in] matrices,
/// with their biases and importances: fused matrices (qkv, gate_up) split into their parts and
/// [in, out] storage transposed. Pruning works on these and writes the result back into a block of
/// any layout. Tensors are created in the caller's dispose scope.
/// </summary>
internal sealed class LayerRoles
{
    readonly Dictionary<ProjectionRole, (Tensor Weight, Tensor? Bias, Tensor? Importance)> _parts = new();

    public bool Has(ProjectionRole role) => _parts.ContainsKey(role);

    /// <summary>Importance of the role's weight, [out, in].</summary>
    public Tensor I(ProjectionRole role) => _parts[role].Importance!;

    public static LayerRoles Read(DecoderLayer layer, ModelConfig c, Func<Tensor, Tensor> importance)
    {
        var roles = new LayerRoles();
        foreach (var (name, module) in layer.Attention.ProjectionsWithRoles.Concat(layer.FeedForward.ProjectionsWithRoles))
        {
            var p = ProjectionSlots.BaseOf(module);
            var weight = p.DenseWeight();
            var score = Dense(p, importance(StoredWeight(p)));
            var bias = p.Bias?.detach().to(ScalarType.Float32);
            foreach (var (role, start, length) in Split(name.Role, c))
                roles._parts[role] = (weight.narrow(0, start, length), bias?.narrow(0, start, length), score.narrow(0, start, length));
        }
        return roles;
    }

    /// <summary>Keeps <paramref name="rows"/> (outputs) and <paramref name="cols"/> (inputs) of the role's weight in <paramref name="from"/>.</summary>
    public void Set(ProjectionRole role, LayerRoles from, Tensor rows, Tensor cols)
    {
        var (w, b, _) = from._parts[role];
        _parts[role] = (w.index_select(0, rows).index_select(1, cols), b?.index_select(0, rows), null);
    }

    /// <summary>Writes the roles into a block's projections, fusing where its layout fuses.</summary>
    public void Write(DecoderLayer block)
    {
        foreach (var (name, module) in block.Attention.ProjectionsWithRoles.Concat(block.FeedForward.ProjectionsWithRoles))
        {
            var p = ProjectionSlots.BaseOf(module);
            var parts = Parts(name.Role).Select(r => _parts[r]).ToList();
            p.SetDenseWeight(parts.Count == 1 ? parts[0].Weight : cat(parts.Select(x => x.Weight).ToArray(), 0));
            if (p.Bias is { } bias)
            {
                using var _ = no_grad();
                bias.copy_(parts.All(x => x.Bias is not null) ? cat(parts.Select(x => x.Bias!).ToArray(), 0).to(bias.dtype) : zeros_like(bias));
            }
        }
    }

    static IEnumerable<ProjectionRole> Parts(ProjectionRole role) => role switch
    {
        ProjectionRole.QueryKeyValue => new[] { ProjectionRole.Query, ProjectionRole.Key, ProjectionRole.Value },
        ProjectionRole.GateUp => new[] { ProjectionRole.Gate, ProjectionRole.Up },
        _ => new[] { role },
    };

    /// <summary>The parts of a fused matrix as (role, first row, rows), rows in HF's order (q, k, v; gate, up).</summary>
    static IEnumerable<(ProjectionRole, long, long)> Split(ProjectionRole role, ModelConfig c)
    {
        long q = c.QueryDim, kv = c.KeyValueDim, i = c.IntermediateSize;
        return role switch
        {
            ProjectionRole.QueryKeyValue => new[] { (ProjectionRole.Query, 0L, q), (ProjectionRole.Key, q, kv), (ProjectionRole.Value, q + kv, kv) },
            ProjectionRole.GateUp => new[] { (ProjectionRole.Gate, 0L, i), (ProjectionRole.Up, i, i) },
            _ => new[] { (role, 0L, ModelFamily.Shape(role, c).Out) },
        };
    }

    // A quantized base's weight as it computes ([out, in], dequantized or merged) stands in for the parameter.
    static Tensor StoredWeight(Projection p) => p is QuantizedProjection q
        ? q.DenseWeight()
        : p.named_parameters().First(x => x.name == "weight").parameter;

    /// <summary>An importance in the stored layout, as float32 [out, in].</summary>
    static Tensor Dense(Projection p, Tensor stored) => (p.FanInFanOut ? stored.t() : stored).to(ScalarType.Float32);
}
