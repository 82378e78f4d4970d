using LoraShell.Core.Inference;
using LoraShell.Core.Lora;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Experiments;

/// <summary>Trainable parameters of LoRA at one rank, next to the dense matrices it adapts.</summary>
public sealed record RankCount(int Rank, long QvParameters, long AllLinearParameters, long DenseQvParameters, long DenseAllLinearParameters)
{
    /// <summary>The q,v adapter's size as a share of the q and v matrices it stands for.</summary>
    public double QvShareOfDense => (double)QvParameters / DenseQvParameters;
    public double AllLinearShareOfDense => (double)AllLinearParameters / DenseAllLinearParameters;
}

/// <summary>One method's training run in a comparison.</summary>
public sealed record MethodRun(string Label, TrainingResult Result)
{
    public double? ValidationBefore => Result.InitialValidationLoss;
    public double? ValidationAfter => Result.FinalValidationLoss;
}

/// <summary>How far merged logits are from unmerged ones (the core's parity check), and whether unmerging restores W0.</summary>
public sealed record MergeCheck(double MaxAbsDifference, double MeanAbsDifference, double MaxAbsLogit, bool UnmergeRestoresBase);

/// <summary>The LoRA experiments of notebooks/01-lora.ipynb and samples/01-lora.cs.</summary>
public static class LoraExperiments
{
    /// <summary>
    /// LoRA's parameter count r·(in + out) per matrix against in·out, on the real model's shapes, for ranks
    /// 1..16 by default. Larger ranks stop making sense on this model: a matrix's rank cannot exceed its
    /// smaller side (32 for v_proj, which Add-LoraAdapter refuses beyond), and from r = in·out/(in + out)
    /// (21.3 for v_proj, 32 for q_proj) an adapter holds more numbers than the matrix it adapts.
    /// </summary>
    public static List<RankCount> RankSweep(ExperimentSetup setup, IEnumerable<int>? ranks = null)
    {
        using var model = setup.LoadBase();
        var slots = model.Model.LinearSlots().ToList();
        long Dense(IEnumerable<Models.LinearSlot> s) => s.Sum(x => { var p = Models.ProjectionSlots.BaseOf(x.Module); return p.InFeatures * p.OutFeatures; });
        long Lora(IEnumerable<Models.LinearSlot> s, int r) => s.Sum(x => { var p = Models.ProjectionSlots.BaseOf(x.Module); return r * (p.InFeatures + p.OutFeatures); });
        var qv = slots.Where(s => s.Name is "q_proj" or "v_proj").ToList();
        return (ranks ?? new[] { 1, 2, 4, 8, 16 }).Select(r => new RankCount(r, Lora(qv, r), Lora(slots, r), Dense(qv), Dense(slots))).ToList();
    }

    /// <summary>
    /// Full fine-tuning and LoRA (q,v at each rank; all-linear at the first rank) on the same data,
    /// steps, seed and sequence length.
    /// </summary>
    public static List<MethodRun> CompareMethods(ExperimentSetup setup, IEnumerable<int> qvRanks, bool includeFull = true, bool includeAllLinear = true,
        Action<string>? log = null)
    {
        var runs = new List<MethodRun>();
        var ranks = qvRanks.ToList();
        if (includeFull)
        {
            using var m = setup.LoadBase();
            log?.Invoke("full fine-tuning");
            runs.Add(new MethodRun("full", Trainer.Run(m, setup.Training(TrainingMethod.Full))));
        }
        foreach (int r in ranks)
        {
            using var m = setup.LoadBase();
            m.Adapters.Add("default", new LoraConfig { R = r, LoraAlpha = 2 * r, TargetModules = new[] { "q_proj", "v_proj" } }, setup.Seed);
            log?.Invoke($"LoRA q,v r={r}");
            runs.Add(new MethodRun($"lora q,v r={r}", Trainer.Run(m, setup.Training(TrainingMethod.Lora))));
        }
        if (includeAllLinear && ranks.Count > 0)
        {
            using var m = setup.LoadBase();
            m.Adapters.Add("default", new LoraConfig { R = ranks[0], LoraAlpha = 2 * ranks[0], TargetRegex = LoraConfig.AllLinear }, setup.Seed);
            log?.Invoke($"LoRA all-linear r={ranks[0]}");
            runs.Add(new MethodRun($"lora all-linear r={ranks[0]}", Trainer.Run(m, setup.Training(TrainingMethod.Lora))));
        }
        return runs;
    }

    /// <summary>
    /// LoRA, DoRA and LoRA+ (B at <paramref name="loraPlusRatio"/> × the learning rate) on every Linear layer at one
    /// rank, with the same data, steps, seed and learning rate: what each variant buys on the same budget.
    /// </summary>
    public static List<MethodRun> CompareVariants(ExperimentSetup setup, int rank = 4, double loraPlusRatio = 16, Action<string>? log = null)
    {
        var runs = new List<MethodRun>();
        foreach (var (label, dora, ratio) in new (string, bool, double?)[] { ($"lora r={rank}", false, null), ($"dora r={rank}", true, null), ($"lora+ r={rank} (B ×{loraPlusRatio:G})", false, loraPlusRatio) })
        {
            using var m = setup.LoadBase();
            m.Adapters.Add("default", new LoraConfig { R = rank, LoraAlpha = 2 * rank, TargetRegex = LoraConfig.AllLinear, UseDora = dora }, setup.Seed);
            log?.Invoke(label);
            runs.Add(new MethodRun(label, Trainer.Run(m, setup.Training(TrainingMethod.Lora) with { LoraPlusRatio = ratio })));
        }
        return runs;
    }

    /// <summary>Trains a q,v adapter briefly, then compares merged against unmerged logits and checks unmerge.</summary>
    public static (MergeCheck Parity, string Before, string After) MergeAndGenerate(ExperimentSetup setup, int rank = 8, string prompt = "Once upon a time", int tokens = 60)
    {
        using var m = setup.LoadBase();
        var greedy = new GenerationOptions { Prompt = prompt, MaxTokens = tokens, Temperature = 0 };
        string before = m.Generate(greedy).Text;
        m.Adapters.Add("default", new LoraConfig { R = rank, LoraAlpha = 2 * rank, TargetModules = new[] { "q_proj", "v_proj" } }, setup.Seed);
        Trainer.Run(m, setup.Training(TrainingMethod.Lora));
        var layer = (LoraLinear)m.Model.Module("model.layers.0.self_attn.q_proj");
        using var w0 = layer.base_layer.DenseWeight().clone();
        var parity = MergeParityCheck.Merge(m.Adapters, m.Adapters.ActiveNames);
        string after = m.Generate(greedy).Text;
        m.Adapters.Unmerge();
        bool restored;
        using (NewDisposeScope()) restored = (layer.base_layer.DenseWeight() - w0).abs().max().item<float>() < 1e-6;
        return (new MergeCheck(parity.MaxAbsDifference, parity.MeanAbsDifference, parity.MaxAbsLogit, restored), before, after);
    }
}
