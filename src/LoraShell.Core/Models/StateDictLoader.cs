using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Copies named tensors into a module's parameters, checking every name and shape first so that a
/// mismatch is reported in full (missing, unexpected, mis-shaped) before anything is written.
/// </summary>
public static class StateDictLoader
{
    /// <param name="source">where the tensors come from (for messages)</param>
    /// <param name="available">names and shapes the source offers</param>
    /// <param name="read">reads one tensor by name (called once per tensor, tensor at a time)</param>
    /// <param name="ignore">source names that may be present without a target (e.g. a tied lm_head)</param>
    public static void Load(nn.Module module, string source, IReadOnlyDictionary<string, long[]> available,
        Func<string, Tensor> read, ISet<string>? ignore = null)
    {
        var targets = module.state_dict();
        var missing = targets.Keys.Where(k => !available.ContainsKey(k)).ToList();
        var unexpected = available.Keys.Where(k => !targets.ContainsKey(k) && !(ignore?.Contains(k) ?? false)).ToList();
        var misShaped = targets.Where(t => available.TryGetValue(t.Key, out var s) && !s.SequenceEqual(t.Value.shape))
            .Select(t => $"{t.Key}: file [{string.Join(", ", available[t.Key])}], model [{string.Join(", ", t.Value.shape)}]")
            .ToList();
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {missing.Count}: {Preview(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected {unexpected.Count}: {Preview(unexpected)}");
            if (misShaped.Count > 0) parts.Add($"wrong shape {misShaped.Count}: {Preview(misShaped)}");
            throw LoraShellException.InvalidData("WeightsDoNotMatchModel",
                $"Weights in '{source}' do not match the model described by its config ({string.Join("; ", parts)}).", source);
        }

        using var _ = no_grad();
        foreach (var (name, target) in targets)
        {
            using var value = read(name);
            target.copy_(value);
        }
    }

    static string Preview(List<string> items)
        => string.Join(", ", items.Take(8)) + (items.Count > 8 ? $", … ({items.Count - 8} more)" : "");
}
