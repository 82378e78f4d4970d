using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>Makes the adapter an <see cref="AdapterCombination"/> describes, in a model's <see cref="LoraAdapterSet"/>.</summary>
public static class AdapterCombiner
{
    /// <summary>Adds adapter <paramref name="name"/> combined from the sources; returns what PEFT would warn about.</summary>
    public static IReadOnlyList<string> Combine(LoraAdapterSet set, string name, AdapterCombination o)
    {
        LoraAdapterSet.CheckName(name);
        if (set.Contains(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterExists", $"The model already has an adapter named '{name}'; choose another -Name.", name);
        var configs = o.Adapters.Select(set.ConfigOf).ToList();
        var type = Check(set, o, configs);
        o = o with { Type = type };
        var warnings = new List<string>();
        var config = NewConfig(o, configs, set);
        if (configs.Any(c => c.UseDora))
            warnings.Add($"DoRA source adapters: their magnitudes are not combined (PEFT's add_weighted_adapter ignores them); '{name}' is {(configs[0].UseDora ? "DoRA with the magnitude ‖W0‖ per row" : "plain LoRA, as the first source")}.");

        var active = set.ActiveNames.ToArray();
        set.Add(name, config, seed: o.Seed);
        set.KeepInitialization(name);
        set.SetActive(active);
        try
        {
            var random = new Generator((ulong)o.Seed);
            var covered = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (path, layer) in set.Layers().Where(l => l.Layer.Adapters.Contains(name)).ToList())
            {
                var present = o.Adapters.Select((a, i) => (Adapter: a, Weight: o.Weights[i])).Where(s => layer.Adapters.Contains(s.Adapter)).ToList();
                if (present.Count == 0)
                    throw LoraShellException.InvalidArgument("NoSourceForModule",
                        $"'{path}' is among the combined target modules but none of {string.Join(", ", o.Adapters)} adapts it; PEFT refuses such a combination too. Combine adapters of the same modules.", path);
                covered.Add(path);
                using var scope = NewDisposeScope();
                var (a, b) = Factors(layer, path, present, o, random, layer.Rank(name));
                using var _ = no_grad();
                layer.lora_A[name].weight!.copy_(a);
                layer.lora_B[name].weight!.copy_(b);
            }
            var dropped = set.Layers().Where(l => !covered.Contains(l.Path) && o.Adapters.Any(l.Layer.Adapters.Contains)).Select(l => l.Path).ToList();
            if (dropped.Count > 0)
                warnings.Add($"{dropped.Count} module(s) of the sources lie outside '{name}''s targets (the first source's layers_to_transform) and are left out, as PEFT does: {string.Join(", ", dropped.Take(4))}{(dropped.Count > 4 ? ", …" : "")}.");
        }
        catch
        {
            set.Delete(name);
            throw;
        }
        return warnings;
    }

    /// <summary>PEFT's checks, and the type in effect (one source: Linear, as PEFT does).</summary>
    static CombinationType Check(LoraAdapterSet set, AdapterCombination o, List<LoraConfig> configs)
    {
        if (o.Adapters.Count == 0) throw LoraShellException.InvalidArgument("NoAdaptersToCombine", "Name at least one adapter to combine.");
        if (o.Weights.Count != o.Adapters.Count)
            throw LoraShellException.InvalidArgument("WeightCountMismatch", $"{o.Adapters.Count} adapters but {o.Weights.Count} weights; give one weight per adapter (PEFT would silently drop the extra).", o.Weights.Count);
        if (o.Weights.Any(w => !double.IsFinite(w))) throw LoraShellException.InvalidArgument("InvalidWeight", "Every weight must be a finite number.", o.Weights);
        if (o.Adapters.Distinct().Count() != o.Adapters.Count) throw LoraShellException.InvalidArgument("DuplicateAdapter", "Each adapter may be named once.", o.Adapters);
        var type = o.Adapters.Count == 1 ? CombinationType.Linear : o.Type;
        var effective = o with { Type = type };
        if (effective.Prunes && o.Density is not double)
            throw LoraShellException.InvalidArgument("DensityRequired", $"Combination type {type} prunes each source to a density; give -Density (a share of entries kept, e.g. 0.5).", type);
        if (o.Density is double d && !(d >= 0 && double.IsFinite(d)))
            throw LoraShellException.InvalidArgument("InvalidDensity", $"-Density must be a number from 0 (got {d}); 1 or more keeps everything.", d);
        if (effective.IsDare && o.Density <= 0)
            throw LoraShellException.InvalidArgument("InvalidDensity", "DARE divides the kept entries by the density, so it must be above 0 (PEFT writes NaN at 0).", o.Density);
        if (o.SvdClamp is double c && !(c > 0 && c <= 1))
            throw LoraShellException.InvalidArgument("InvalidSvdClamp", $"-SvdClamp is a quantile in (0, 1] (got {c}).", c);
        if (o.SvdRank is < 1) throw LoraShellException.InvalidArgument("InvalidRank", $"-SvdRank must be at least 1 (got {o.SvdRank}).", o.SvdRank);
        foreach (var (config, adapter) in configs.Zip(o.Adapters))
        {
            if (set.EmbeddingLayer() is { } embedding && embedding.Layer.Adapters.Contains(adapter))
                throw LoraShellException.InvalidArgument("CombinationNotSupported", $"Adapter '{adapter}' adapts the token embedding; Join-LoraAdapter combines Linear layers only.", adapter);
            if (set.HasTokenRows(adapter))
                throw LoraShellException.InvalidArgument("CombinationNotSupported", $"Adapter '{adapter}' trains token rows (trainable_token_indices), which add_weighted_adapter does not combine.", adapter);
            if (config.ModulesToSave is { Count: > 0 })
                throw LoraShellException.InvalidArgument("CombinationNotSupported", $"Adapter '{adapter}' has modules_to_save, which add_weighted_adapter does not combine.", adapter);
        }
        if (configs[0].Init == LoraInit.Pissa)
            throw LoraShellException.InvalidArgument("CombinationNotSupported", $"The first adapter, '{o.Adapters[0]}', was initialised with PiSSA, which rewrote the base weights; the combined adapter would inherit that init (PEFT would apply it again). Put another adapter first.", o.Adapters[0]);
        var ranks = configs.Select(MaxRank).ToList();
        if (!effective.IsSvd && type != CombinationType.Cat && ranks.Distinct().Count() != 1)
            throw LoraShellException.InvalidArgument("RanksDiffer",
                $"Combination type {type} combines A and B entry by entry, so the adapters need one rank; they have {string.Join(", ", o.Adapters.Zip(ranks, (a, r) => $"{a} r={r}"))}. Use Cat or Svd.", ranks);
        if (configs.Select(cfg => cfg.TargetRegex is null).Distinct().Count() > 1)
            throw LoraShellException.InvalidArgument("CombinationNotSupported", "Some adapters name their target modules and some give a regular expression; PEFT combines only one kind.", o.Adapters);
        return type;
    }

    static int MaxRank(LoraConfig c) => c.RankPattern.Values.Prepend(c.R).Max();

    /// <summary>The first source's settings with r = lora_alpha = the new rank, no patterns, and every source's targets.</summary>
    static LoraConfig NewConfig(AdapterCombination o, List<LoraConfig> configs, LoraAdapterSet set)
    {
        int rank = o.Type == CombinationType.Cat ? configs.Sum(MaxRank) : o.IsSvd ? o.SvdRank ?? configs.Max(MaxRank) : MaxRank(configs[0]);
        var first = configs[0];
        var config = first with
        {
            R = rank, LoraAlpha = rank, RankPattern = new Dictionary<string, int>(), AlphaPattern = new Dictionary<string, double>(),
            Init = first.Init == LoraInit.Random ? LoraInit.Default : first.Init, BaseModelNameOrPath = first.BaseModelNameOrPath,
        };
        return first.TargetRegex is not null
            ? config with { TargetRegex = string.Join("|", configs.Select(c => $"({c.TargetRegex})")), TargetModules = null }
            : config with { TargetModules = configs.SelectMany(c => c.TargetModules ?? Array.Empty<string>()).Distinct().OrderBy(t => t, StringComparer.Ordinal).ToList() };
    }

    /// <summary>The new adapter's A [rank, in] and B [out, rank] on one module, float32.</summary>
    static (Tensor A, Tensor B) Factors(LoraLinear layer, string path, List<(string Adapter, double Weight)> present, AdapterCombination o, Generator random, int rank)
    {
        var device = layer.lora_A[present[0].Adapter].weight!.device;
        Tensor A(string n) => layer.lora_A[n].weight!.detach();
        Tensor B(string n) => layer.lora_B[n].weight!.detach();
        if (o.Type == CombinationType.Cat)
        {
            var a = zeros(rank, layer.InFeatures, device: device);
            var b = zeros(layer.OutFeatures, rank, device: device);
            var stackedA = cat(present.Select(p => A(p.Adapter) * (p.Weight * layer.Scaling(p.Adapter))).ToList(), 0);
            var stackedB = cat(present.Select(p => B(p.Adapter)).ToList(), 1);
            a.narrow(0, 0, stackedA.shape[0]).copy_(stackedA);
            b.narrow(1, 0, stackedB.shape[1]).copy_(stackedB);
            return (a, b);
        }
        if (o.IsSvd)
        {
            // The release's valid_weights already hold wᵢ·sᵢ, and get_delta_weight scales by sᵢ again.
            var deltas = present.Select(p => layer.DeltaWeight(p.Adapter).detach()).ToList();
            var d = TaskMerging.Merge(o.Type, deltas, present.Select(p => p.Weight * layer.Scaling(p.Adapter)).ToList(), o, random);
            if (rank > Math.Min(d.shape[0], d.shape[1]))
                throw LoraShellException.InvalidArgument("RankTooLarge", $"-SvdRank {rank} is larger than min(out, in) = {Math.Min(d.shape[0], d.shape[1])} of '{path}'.", rank);
            var (u, s, vh) = linalg.svd(d, fullMatrices: false);
            var b = u.narrow(1, 0, rank) * s.narrow(0, 0, rank).unsqueeze(0);
            var a = vh.narrow(0, 0, rank);
            if (o.SvdClamp is double q)
            {
                var high = Quantile(cat(new[] { b.flatten(), a.flatten() }), q);
                b = b.clamp(-high, high);
                a = a.clamp(-high, high);
            }
            return (a.contiguous(), b.contiguous());
        }
        foreach (var p in present)
            if (layer.Rank(p.Adapter) != rank)
                throw LoraShellException.InvalidArgument("RanksDiffer", $"On '{path}' adapter '{p.Adapter}' has rank {layer.Rank(p.Adapter)} (its rank_pattern) but the combination's rank is {rank}; use Cat or Svd.", path);
        var g = present.Select(p => p.Weight * layer.Scaling(p.Adapter)).ToList();
        var aWeights = g.Select(x => (x >= 0 ? 1 : -1) * Math.Sqrt(Math.Abs(x))).ToList(); // the sign goes on A only
        var bWeights = g.Select(x => Math.Sqrt(Math.Abs(x))).ToList();
        var merged = TaskMerging.Merge(o.Type, present.Select(p => A(p.Adapter)).ToList(), aWeights, o, random);
        return (merged, TaskMerging.Merge(o.Type, present.Select(p => B(p.Adapter)).ToList(), bWeights, o, random));
    }

    /// <summary>torch.quantile's default (linear interpolation between the two nearest ranks).</summary>
    static double Quantile(Tensor values, double q)
    {
        var sorted = values.sort().Values;
        double position = q * (sorted.numel() - 1);
        long low = (long)Math.Floor(position), high = (long)Math.Ceiling(position);
        double lo = sorted[low].item<float>(), hi = sorted[high].item<float>();
        return lo + (hi - lo) * (position - low);
    }
}
