using LoraShell.Core.Experiments;
using Plotly.NET;
using CSharpChart = Plotly.NET.CSharp.Chart;
using Plotly.NET.CSharp;

namespace LoraShell.Charts;

/// <summary>The charts of the experiments, shared by the notebooks and their dotnet-run twins.</summary>
public static class ExperimentCharts
{
    /// <summary>Memory growth, ms/step and final validation loss per method, as three titled bar panels.</summary>
    public static GenericChart MethodCosts(IReadOnlyList<MethodCost> rows, string title = "Full fine-tuning, LoRA and Ladder side-tuning", double? baseValidationLoss = null)
    {
        var names = rows.Select(r => r.Method).ToArray();
        GenericChart Panel(IEnumerable<double> values, string axis, int colour) => CSharpChart.Column<double, string, string>(
                values: values.ToArray(), Keys: names, Name: axis, MarkerColor: ChartStyle.ColorAt(colour), ShowLegend: false)
            .WithYAxisStyle<double, double, string>(TitleText: axis);
        var memory = Panel(rows.Select(r => r.TrainingMemoryMiB), "MiB added", 0);
        var time = Panel(rows.Select(r => r.MillisecondsPerStep), "ms per step", 1);
        var lossBars = Panel(rows.Select(r => r.ValidationAfter ?? double.NaN), "loss (nats)", 2);
        var loss = baseValidationLoss is { } b ? CSharpChart.Combine(new[] { lossBars, ChartStyle.Reference("before training", b, names[0], names[^1]) }) : lossBars;
        return ChartStyle.Titled(CSharpChart.Grid(new[] { memory, time, loss }, 3, 1), title, "top: memory added by training, middle: time per step, bottom: validation loss after; same data, seed and steps for all");
    }

    /// <summary>Singular values of each ΔW on a log scale.</summary>
    public static GenericChart Spectra(IReadOnlyList<DeltaSpectrum> spectra, string title = "Singular values of the fine-tune's weight deltas", string? subtitle = null)
        => ChartStyle.Titled(CSharpChart.Combine(spectra.Select((s, i) => CSharpChart.Line<double, double, string>(
                x: Enumerable.Range(1, s.Singular.Length).Select(k => (double)k).ToArray(), y: s.Singular, Name: s.Name, ShowMarkers: false, LineColor: ChartStyle.ColorAt(i))))
            .WithYAxisStyle<double, double, string>(TitleText: "singular value σ_i (log scale)", AxisType: StyleParam.AxisType.Log)
            .WithXAxisStyle<double, double, string>(TitleText: "singular value index i"), title, subtitle);

    /// <summary>Validation loss of merged rank-r deltas against the full fine-tune and the base model.</summary>
    public static GenericChart LossByRank(IReadOnlyList<RankedDelta> rows, FullFineTune ft, string title = "Validation loss of the base plus a rank-r SVD of the delta")
    {
        double lastRank = rows.Max(r => r.Rank);
        return ChartStyle.Titled(CSharpChart.Combine(new[]
        {
            CSharpChart.Line<double, double, string>(x: rows.Select(r => (double)r.Rank).ToArray(), y: rows.Select(r => r.ValidationLoss).ToArray(),
                Name: "base + merged rank-r delta", ShowMarkers: true, LineColor: ChartStyle.ColorAt(0), MarkerColor: ChartStyle.ColorAt(0)),
            ChartStyle.Reference("full fine-tuning", ft.FineTunedValidationLoss, 1.0, lastRank, ChartStyle.ColorAt(3)),
            ChartStyle.Reference("base model, before training", ft.BaseValidationLoss, 1.0, lastRank),
        }).WithXAxisStyle<double, double, string>(TitleText: "rank r (log scale)", AxisType: StyleParam.AxisType.Log)
          .WithYAxisStyle<double, double, string>(TitleText: "validation loss (nats)"), title, "lower is better; dashed lines: the two ends the ranks interpolate between");
    }
}
