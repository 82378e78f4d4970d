using LoraShell.Core.Lora;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;

namespace LoraShell.Core.Experiments;

/// <summary>One method's cost and result in the LST comparison.</summary>
public sealed record MethodCost(string Method, long TrainableParameters, double PeakMemoryMiB, double TrainingMemoryMiB, double MillisecondsPerStep,
    double? ValidationBefore, double? ValidationAfter, double[]? Gates);

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
}
