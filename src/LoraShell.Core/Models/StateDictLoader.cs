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
        var targets = module.state_dict();
        var offered = ignore is null ? available : available.Where(p => !ignore.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        Check(targets.Select(t => new TensorSpec(t.Key, t.Value.shape)), offered, source);
        using var _ = no_grad();
        foreach (var (name, target) in targets)
        {
            using var value = read(name);
            // A NaN or Inf weight makes every output NaN, with no word of why: refuse it where it is.
            if (value.is_floating_point() && !value.isfinite().all().item<bool>())
                throw LoraShellException.InvalidData("NonFiniteWeights", $"Tensor '{name}' in '{source}' holds NaN or Inf values; the model would only produce NaN.", name);
            target.copy_(value);
        }
    }

    static string Preview(List<string> items)
        => string.Join(", ", items.Take(8)) + (items.Count > 8 ? $", … ({items.Count - 8} more)" : "");
}
