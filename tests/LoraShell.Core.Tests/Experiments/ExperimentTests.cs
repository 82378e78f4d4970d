using LoraShell.Core.Experiments;

namespace LoraShell.Core.Tests;

public class ExperimentTests
{
    static ExperimentSetup Tiny => new()
    {
        SharedFolder = SharedData.Path_(), Steps = 12, BatchSize = 4, SequenceLength = 64, MaxEvalWindows = 16,
    };

    [Fact]
    public void RankSweepCountsTwoRdAgainstDSquared()
    {
        var rows = LoraExperiments.RankSweep(Tiny, new[] { 1, 8, 64 });
        Assert.Equal(new[] { 1, 8, 64 }, rows.Select(r => r.Rank));
        Assert.Equal(8960, rows[1].QvParameters);             // 5 × (8·(64+64) + 8·(64+32))
        Assert.Equal(5 * (64 * 64 + 32 * 64), rows[1].DenseQvParameters);
        Assert.True(rows.Zip(rows.Skip(1)).All(p => p.First.AllLinearParameters < p.Second.AllLinearParameters));
        Assert.All(rows, r => Assert.True(r.AllLinearParameters > r.QvParameters));
    }

    [Fact]
    public void RankSweepStopsWhereTheAdapterIsStillSmallerThanTheMatrices()
    {
        var rows = LoraExperiments.RankSweep(Tiny);
        Assert.Equal(new[] { 1, 2, 4, 8, 16 }, rows.Select(r => r.Rank));
        Assert.All(rows, r => Assert.True(r.QvShareOfDense < 1, $"r={r.Rank}: {r.QvShareOfDense}"));
        // At r = 32 (v_proj's smaller side) the q,v adapter would outgrow the matrices: 5·32·(128+96) > 5·(64·64+32·64).
        Assert.True(LoraExperiments.RankSweep(Tiny, new[] { 32 })[0].QvShareOfDense > 1);
    }

    [Fact]
    public void LadderInitialisationsAreComparedSeedBySeed()
    {
        var trials = LadderExperiments.InitAcrossSeeds(Tiny with { Steps = 4 }, new long[] { 1, 2 });
        Assert.Equal(4, trials.Count);
        Assert.Equal(new long[] { 1, 1, 2, 2 }, trials.Select(t => t.Seed));
        Assert.All(trials, t => Assert.True(double.IsFinite(t.ValidationAfter)));
        // Different seeds draw different batches: the same init ends somewhere else.
        Assert.NotEqual(trials[0].ValidationAfter, trials[2].ValidationAfter);
        var summary = LadderExperiments.Summarize(trials);
        var magnitude = summary.Single(s => s.Init == SideTuning.LadderInit.Magnitude);
        double a = trials[0].ValidationAfter, b = trials[2].ValidationAfter;
        Assert.Equal((a + b) / 2, magnitude.Mean, 12);
        Assert.Equal(Math.Abs(a - b) / Math.Sqrt(2), magnitude.StandardDeviation, 12);
        Assert.Equal(Math.Min(a, b), magnitude.Min);
        var gap = LadderExperiments.Gap(trials);
        double g1 = trials[0].ValidationAfter - trials[1].ValidationAfter, g2 = trials[2].ValidationAfter - trials[3].ValidationAfter;
        Assert.Equal(2, gap.Seeds);
        Assert.Equal((g1 + g2) / 2, gap.MeanGap, 12);
        Assert.Equal((g1 < 0 ? 1 : 0) + (g2 < 0 ? 1 : 0), gap.MagnitudeLower);
        Assert.Equal(Math.Abs(gap.MeanGap) > 2 * gap.StandardDeviation / Math.Sqrt(2), gap.Clear);
    }

    [Fact]
    public void MethodComparisonRunsEveryMethodOnTheSameData()
    {
        var runs = LoraExperiments.CompareMethods(Tiny, new[] { 4 });
        Assert.Equal(new[] { "full", "lora q,v r=4", "lora all-linear r=4" }, runs.Select(r => r.Label));
        Assert.All(runs, r => Assert.True(r.ValidationAfter < r.ValidationBefore, $"{r.Label}: {r.ValidationBefore} -> {r.ValidationAfter}"));
        Assert.Single(runs.Select(r => r.ValidationBefore).Distinct()); // same base, same validation windows
        Assert.True(runs[0].Result.TrainableParameters > runs[2].Result.TrainableParameters);
        Assert.True(runs[2].Result.TrainableParameters > runs[1].Result.TrainableParameters);
    }

    [Fact]
    public void MergedEqualsUnmerged()
    {
        var (parity, before, after) = LoraExperiments.MergeAndGenerate(Tiny, rank: 4, tokens: 20);
        Assert.True(parity.MaxAbsDifference / parity.MaxAbsLogit < 1e-5, $"{parity.MaxAbsDifference}");
        Assert.True(parity.UnmergeRestoresBase);
        Assert.StartsWith("Once upon a time", before);
        Assert.StartsWith("Once upon a time", after);
    }

    [Fact]
    public void SvdErrorFallsAndLossApproachesFullFineTuningAsRankGrows()
    {
        using var dir = new TempFolder();
        var setup = Tiny with { Steps = 15 };
        var ft = SvdExperiments.FineTune(setup, dir.Path);
        Assert.True(ft.FineTunedValidationLoss < ft.BaseValidationLoss);
        var spectra = SvdExperiments.Spectra(ft.BaseFolder, ft.FineTunedFolder);
        Assert.Equal(6, spectra.Count);
        foreach (var s in spectra)
        {
            Assert.True(s.Singular.Zip(s.Singular.Skip(1)).All(p => p.First >= p.Second));
            Assert.True(s.OptimalErrorByRank.Zip(s.OptimalErrorByRank.Skip(1)).All(p => p.First >= p.Second - 1e-12));
            Assert.Equal(1.0, s.EnergyByRank[^1], 5);
        }
        var rows = SvdExperiments.MergedLossByRank(setup, ft, dir.Path, new[] { 1, 4, 32 });
        Assert.True(rows[0].MeanRelativeError > rows[1].MeanRelativeError && rows[1].MeanRelativeError > rows[2].MeanRelativeError);
        Assert.True(rows[0].AdapterBytes < rows[1].AdapterBytes && rows[1].AdapterBytes < rows[2].AdapterBytes);
        Assert.True(Math.Abs(rows[2].ValidationLoss - ft.FineTunedValidationLoss) < Math.Abs(rows[0].ValidationLoss - ft.FineTunedValidationLoss) + 1e-9);
        Assert.Equal(1, SvdExperiments.SmallestRankWithin(rows, ft.FineTunedValidationLoss, tolerance: 10));
        Assert.Null(SvdExperiments.SmallestRankWithin(rows, ft.FineTunedValidationLoss, tolerance: -10));
    }
}

public class LadderExperimentTests
{
    [Fact]
    public void LadderComparisonCoversEveryMethodAndReportsGates()
    {
        var setup = new ExperimentSetup { SharedFolder = SharedData.Path_(), Steps = 8, BatchSize = 4, SequenceLength = 64, MaxEvalWindows = 8 };
        var rows = LadderExperiments.Compare(setup, reductionFactor: 4);
        Assert.Equal(new[] { "full", "lora all-linear r=8", "ladder k=4 magnitude", "ladder k=4 random" }, rows.Select(r => r.Method));
        Assert.All(rows, r => Assert.True(r.ValidationAfter < r.ValidationBefore, r.Method));
        Assert.Null(rows[0].Gates);
        Assert.Equal(5, rows[2].Gates!.Length);
        Assert.True(rows[0].TrainableParameters > rows[2].TrainableParameters);
    }
}
