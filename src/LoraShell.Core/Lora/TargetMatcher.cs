using System.Text.RegularExpressions;
using LoraShell.Core.Models;

namespace LoraShell.Core.Lora;

/// <summary>
/// PEFT's rules for which modules get an adapter: a list entry matches a module whose path equals it
/// or ends with "." + it; a string is a regex that must match the whole path; "all-linear" is every
/// Linear except the output head. <c>layers_to_transform</c> then keeps only the listed layer indices.
/// </summary>
public static class TargetMatcher
{
    public static bool Matches(LoraConfig config, string modulePath, int layerIndex)
    {
        bool named = config.IsAllLinear
            || (config.TargetRegex is string regex ? Regex.IsMatch(modulePath, $"^(?:{regex})$")
                : config.TargetModules!.Any(t => modulePath == t || modulePath.EndsWith("." + t, StringComparison.Ordinal)));
        if (!named) return false;
        return config.LayersToTransform is null || config.LayersToTransform.Contains(layerIndex);
    }

    /// <summary>The slots an adapter with this config would wrap; the error lists the model's Linear modules when none match.</summary>
    public static List<LinearSlot> Select(LlamaForCausalLM model, LoraConfig config)
    {
        var slots = model.LinearSlots().ToList();
        var chosen = slots.Where(s => Matches(config, s.Path, s.LayerIndex)).ToList();
        if (chosen.Count == 0)
        {
            string wanted = config.TargetRegex ?? string.Join(", ", config.TargetModules!);
            var shortNames = slots.Select(s => s.Name).Distinct();
            throw LoraShellException.InvalidArgument("NoTargetModulesMatched",
                $"Target modules '{wanted}'{(config.LayersToTransform is null ? "" : $" in layers [{string.Join(", ", config.LayersToTransform)}]")} match no Linear module of this model. " +
                $"Its Linear modules are {string.Join(", ", shortNames)} in layers 0..{model.Config.NumHiddenLayers - 1} (e.g. '{slots[0].Path}'), or use all-linear.", wanted);
        }
        return chosen;
    }
}
