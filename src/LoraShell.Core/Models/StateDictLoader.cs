using LoraShell.Core.Models.Families;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Copies named tensors into a module's parameters, checking every name and shape first so that a
/// mismatch is reported in full (missing, unexpected, mis-shaped) before anything is written.
/// </summary>
public static class StateDictLoader
{
    /// <summary>
    /// Compares the tensors a model needs with those a file offers (names and shapes from headers
    /// only), so a config that does not fit its checkpoint fails before memory is allocated.
    /// </summary>
    public static void Check(IEnumerable<TensorSpec> expected, IReadOnlyDictionary<string, long[]> available, string source)
    {
        var need = expected.ToDictionary(t => t.Name, t => t.Shape, StringComparer.Ordinal);
        var missing = need.Keys.Where(k => !available.ContainsKey(k)).ToList();
        var unexpected = available.Keys.Where(k => !need.ContainsKey(k)).ToList();
        var misShaped = need.Where(t => available.TryGetValue(t.Key, out var s) && !s.SequenceEqual(t.Value))
            .Select(t => $"{t.Key}: file [{string.Join(", ", available[t.Key])}], config [{string.Join(", ", t.Value)}]")
            .ToList();
        if (missing.Count + unexpected.Count + misShaped.Count == 0) return;
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing {missing.Count}: {Preview(missing)}");
        if (unexpected.Count > 0) parts.Add($"unexpected {unexpected.Count}: {Preview(unexpected)}");
        if (misShaped.Count > 0) parts.Add($"wrong shape {misShaped.Count}: {Preview(misShaped)}");
        throw LoraShellException.InvalidData("WeightsDoNotMatchModel",
            $"Weights in '{source}' do not match the model described by its config ({string.Join("; ", parts)}).", source);
    }

    /// <param name="source">where the tensors come from (for messages)</param>
    /// <param name="available">names and shapes the source offers</param>
    /// <param name="read">reads one tensor by name (called once per tensor, tensor at a time)</param>
    /// <param name="ignore">source names that may be present without a target (e.g. a tied lm_head)</param>
    public static void Load(nn.Module module, string source, IReadOnlyDictionary<string, long[]> available,
        Func<string, Tensor> read, ISet<string>? ignore = null)
    {
        var targets = Targets(module);
        var offered = ignore is null ? available : available.Where(p => !ignore.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        Check(targets.Select(t => new TensorSpec(t.Key, t.Value.Shape)), offered, source);
        using var _ = no_grad();
        foreach (var (name, target) in targets)
        {
            // One tensor at a time, converted (or quantized) into its place: the peak is the model plus one
            // tensor. The scope also frees the finiteness check's temporaries now: left to the GC they held
            // a byte per weight until a collection, 1 GB more than the model for a 1B checkpoint.
            using var scope = NewDisposeScope();
            var value = read(name);
            // A NaN or Inf weight makes every output NaN, with no word of why: refuse it where it is.
            if (value.is_floating_point() && !value.isfinite().all().item<bool>())
                throw LoraShellException.InvalidData("NonFiniteWeights", $"Tensor '{name}' in '{source}' holds NaN or Inf values; the model would only produce NaN.", name);
            target.Write(value);
        }
    }

    /// <summary>
    /// Where each named tensor of a checkpoint goes: the module's parameters and buffers, plus the weight of
    /// every quantized projection (held as codes, not as a parameter), which is quantized as it is read.
    /// </summary>
    static Dictionary<string, (long[] Shape, Action<Tensor> Write)> Targets(nn.Module module)
    {
        var targets = module.state_dict().ToDictionary(p => p.Key, p => (p.Value.shape, (Action<Tensor>)(v => p.Value.copy_(v))), StringComparer.Ordinal);
        foreach (var (path, child) in module.named_modules())
            if (child is Blocks.QuantizedProjection { IsQuantized: true } q)
                targets[$"{path}.weight"] = (q.FileShape, q.LoadFromFile);
        return targets;
    }

    static string Preview(List<string> items)
        => string.Join(", ", items.Take(8)) + (items.Count > 8 ? $", … ({items.Count - 8} more)" : "");
}
