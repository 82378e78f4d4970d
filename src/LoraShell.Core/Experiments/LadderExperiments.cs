using LoraShell.Core.Lora;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;

namespace LoraShell.Core.Experiments;

/// <summary>One method's cost and result in the LST comparison.</summary>
public sealed record MethodCost(string Method, long TrainableParameters, double PeakMemoryMiB, double TrainingMemoryMiB, double MillisecondsPerStep,
    double? ValidationBefore, double? ValidationAfter, double[]? Gates);

/// <summary>One ladder run of the initialisation comparison: its init, seed and validation loss after training.</summary>
public sealed record InitTrial(LadderInit Init, long Seed, double ValidationAfter);

/// <summary>An initialisation's validation loss over seeds: mean, sample standard deviation, lowest and highest.</summary>
public sealed record InitSummary(LadderInit Init, int Runs, double Mean, double StandardDeviation, double Min, double Max)
{
    public static InitSummary Of(LadderInit init, IReadOnlyList<double> losses)
    {
        double mean = losses.Average();
        double sd = losses.Count > 1 ? Math.Sqrt(losses.Sum(l => (l - mean) * (l - mean)) / (losses.Count - 1)) : 0;
        return new InitSummary(init, losses.Count, mean, sd, losses.Min(), losses.Max());
    }
}

/// <summary>
/// Magnitude minus random final loss, seed by seed (each seed's pair sees the same batches): the mean
/// and standard deviation of those differences, and in how many seeds magnitude came out lower.
/// </summary>
public sealed record InitGap(int Seeds, double MeanGap, double StandardDeviation, int MagnitudeLower)
{
    /// <summary>Whether the mean gap is more than two standard errors from zero.</summary>
    public bool Clear => Seeds > 1 && Math.Abs(MeanGap) > 2 * StandardDeviation / Math.Sqrt(Seeds);

    public string Verdict => Clear
        ? $"the gap is more than two standard errors: {(MeanGap < 0 ? "magnitude" : "random")} initialisation is better here"
        : "the gap is within two standard errors of zero: at this budget the two starts cannot be told apart";

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"magnitude minus random, same seed: mean {MeanGap:+0.0000;-0.0000}, standard deviation {StandardDeviation:0.0000}; magnitude lower in {MagnitudeLower} of {Seeds} seeds");
}

/// <summary>The Ladder Side-Tuning experiments of notebooks/02-ladder-side-tuning.ipynb and samples/02-ladder-side-tuning.cs.</summary>
public static class LadderExperiments
{
    /// <summary>
    /// Full fine-tuning, LoRA (r 8, all-linear) and Ladder side-tuning (reduction <paramref name="reductionFactor"/>,
    /// magnitude-pruned and random init) on the same data, steps, seed and sequence length: trainable
    /// parameters, peak memory, time per step, validation loss before and after, and the learned gates.
    /// </summary>
    public static List<MethodCost> Compare(ExperimentSetup setup, int reductionFactor = 4, Action<string>? log = null)
    {
        var rows = new List<MethodCost>();
        // Memory is what this comparison is about: with freed memory returned to the OS every step, each
        // run's growth is its own (otherwise later runs reuse what earlier ones freed and show none).
        TrainingOptions Options(TrainingMethod method) => setup.Training(method) with { TrimMemoryEachStep = true };
        MethodCost Row(string name, TrainingResult r) => new(name, r.TrainableParameters, r.PeakMemoryMiB, r.PeakMemoryMiB - r.StartMemoryMiB,
            r.MillisecondsPerStep, r.InitialValidationLoss, r.FinalValidationLoss, r.GateValues);

        using (var m = setup.LoadBase())
        {
            log?.Invoke("full fine-tuning");
            rows.Add(Row("full", Trainer.Run(m, Options(TrainingMethod.Full))));
        }
        using (var m = setup.LoadBase())
        {
            log?.Invoke("LoRA r=8 all-linear");
            m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = LoraConfig.AllLinear }, setup.Seed);
            rows.Add(Row("lora all-linear r=8", Trainer.Run(m, Options(TrainingMethod.Lora))));
        }
        foreach (var init in new[] { LadderInit.Magnitude, LadderInit.Random })
        {
            using var m = setup.LoadBase();
            log?.Invoke($"ladder k={reductionFactor} ({init} init)");
            var options = Options(TrainingMethod.Ladder) with { Ladder = new LadderConfig { ReductionFactor = reductionFactor, Init = init } };
            rows.Add(Row($"ladder k={reductionFactor} {init.ToString().ToLowerInvariant()}", Trainer.Run(m, options)));
        }
        return rows;
    }

    /// <summary>
    /// Magnitude-pruned against random side-network initialisation, the same ladder trained once per seed
    /// (the seed draws the batches and the random init), so a difference between the two
    /// can be told from seed-to-seed noise.
    /// </summary>
    public static List<InitTrial> InitAcrossSeeds(ExperimentSetup setup, IEnumerable<long> seeds, int reductionFactor = 4, Action<string>? log = null)
    {
        var trials = new List<InitTrial>();
        foreach (long seed in seeds)
            foreach (var init in new[] { LadderInit.Magnitude, LadderInit.Random })
            {
                using var m = setup.LoadBase();
                log?.Invoke($"ladder k={reductionFactor} ({init} init, seed {seed})");
                var options = setup.Training(TrainingMethod.Ladder) with { Seed = seed, Ladder = new LadderConfig { ReductionFactor = reductionFactor, Init = init } };
                var result = Trainer.Run(m, options);
                trials.Add(new InitTrial(init, seed, result.FinalValidationLoss ?? double.NaN));
            }
        return trials;
    }

    /// <summary>The seed-by-seed difference between the two initialisations of <see cref="InitAcrossSeeds"/>.</summary>
    public static InitGap Gap(IReadOnlyList<InitTrial> trials)
    {
        var gaps = trials.GroupBy(t => t.Seed)
            .Select(g => g.Single(t => t.Init == LadderInit.Magnitude).ValidationAfter - g.Single(t => t.Init == LadderInit.Random).ValidationAfter)
            .ToList();
        var spread = InitSummary.Of(LadderInit.Magnitude, gaps);
        return new InitGap(gaps.Count, spread.Mean, spread.StandardDeviation, gaps.Count(g => g < 0));
    }

    /// <summary>Per initialisation, the mean and spread of <see cref="InitAcrossSeeds"/>'s losses.</summary>
    public static List<InitSummary> Summarize(IReadOnlyList<InitTrial> trials)
        => trials.GroupBy(t => t.Init).Select(g => InitSummary.Of(g.Key, g.Select(t => t.ValidationAfter).ToList())).ToList();
}
