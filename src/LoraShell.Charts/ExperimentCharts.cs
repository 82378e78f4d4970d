using LoraShell.Core.Experiments;
using Plotly.NET;
using CSharpChart = Plotly.NET.CSharp.Chart;
using Plotly.NET.CSharp;

namespace LoraShell.Charts;

/// <summary>The charts of the experiments, shared by the notebooks and their dotnet-run twins.</summary>
public static class ExperimentCharts
{
    /// <summary>Memory growth, ms/step and final validation loss per method, as three bar charts.</summary>
    public static GenericChart MethodCosts(IReadOnlyList<MethodCost> rows)
    {
        var names = rows.Select(r => r.Method).ToArray();
        var memory = CSharpChart.Column<double, string, string>(values: rows.Select(r => r.TrainingMemoryMiB).ToArray(), Keys: names, Name: "memory growth during training (MiB)");
        var time = CSharpChart.Column<double, string, string>(values: rows.Select(r => r.MillisecondsPerStep).ToArray(), Keys: names, Name: "ms per step");
        var loss = CSharpChart.Column<double, string, string>(values: rows.Select(r => r.ValidationAfter ?? double.NaN).ToArray(), Keys: names, Name: "validation loss after");
        return CSharpChart.Grid(new[] { memory, time, loss }, 3, 1);
    }

    /// <summary>Singular values of each ΔW on a log scale.</summary>
    public static GenericChart Spectra(IReadOnlyList<DeltaSpectrum> spectra)
        => CSharpChart.Combine(spectra.Select(s => CSharpChart.Line<double, double, string>(
                x: Enumerable.Range(1, s.Singular.Length).Select(i => (double)i).ToArray(), y: s.Singular, Name: s.Name, ShowMarkers: false)))
            .WithYAxisStyle<double, double, string>(TitleText: "σ_i", AxisType: StyleParam.AxisType.Log)
            .WithXAxisStyle<double, double, string>(TitleText: "i");

    /// <summary>Validation loss of merged rank-r deltas against the full fine-tune and the base model.</summary>
    public static GenericChart LossByRank(IReadOnlyList<RankedDelta> rows, FullFineTune ft)
    {
        double lastRank = rows.Max(r => r.Rank);
        return CSharpChart.Combine(new[]
        {
            CSharpChart.Line<double, double, string>(x: rows.Select(r => (double)r.Rank).ToArray(), y: rows.Select(r => r.ValidationLoss).ToArray(), Name: "merged rank-r delta"),
            CSharpChart.Line<double, double, string>(x: new[] { 1.0, lastRank }, y: new[] { ft.FineTunedValidationLoss, ft.FineTunedValidationLoss }, Name: "full fine-tuning", ShowMarkers: false),
            CSharpChart.Line<double, double, string>(x: new[] { 1.0, lastRank }, y: new[] { ft.BaseValidationLoss, ft.BaseValidationLoss }, Name: "base model", ShowMarkers: false),
        }).WithXAxisStyle<double, double, string>(TitleText: "rank r", AxisType: StyleParam.AxisType.Log).WithYAxisStyle<double, double, string>(TitleText: "validation loss");
    }
}
