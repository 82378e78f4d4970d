using LoraShell.Core.Training;
using Plotly.NET;
using Plotly.NET.CSharp;
using CSharpChart = Plotly.NET.CSharp.Chart;

namespace LoraShell.Charts;

/// <summary>Charts of training runs.</summary>
public static class TrainingCharts
{
    /// <summary>
    /// Training loss per step (a line) and validation loss (dashed, with a marker per evaluation, since
    /// they are few) of each run on one chart, one colour per run; <paramref name="baseline"/> adds a
    /// reference line such as the base model's validation loss before training.
    /// </summary>
    public static GenericChart LossCurves(IReadOnlyList<(string Label, TrainingResult Result)> runs, string title = "Training and validation loss",
        (string Name, double Value)? baseline = null, string? subtitle = null)
    {
        var traces = new List<GenericChart>();
        int lastStep = 1;
        for (int i = 0; i < runs.Count; i++)
        {
            var (label, r) = runs[i];
            var color = ChartStyle.ColorAt(i);
            var steps = Enumerable.Range(1, r.Losses.Count).Select(s => (double)s).ToArray();
            lastStep = Math.Max(lastStep, r.Losses.Count);
            traces.Add(CSharpChart.Line<double, double, string>(x: steps, y: r.Losses.ToArray(), Name: $"{label} train", ShowMarkers: false,
                LineColor: color, LineWidth: 1.5));
            if (r.Evaluations.Count > 0)
                traces.Add(CSharpChart.Line<double, double, string>(
                    x: r.Evaluations.Select(e => (double)e.Step).ToArray(), y: r.Evaluations.Select(e => e.Loss).ToArray(),
                    Name: $"{label} validation", ShowMarkers: true, LineColor: color, MarkerColor: color, LineDash: StyleParam.DrawingStyle.Dash));
        }
        if (baseline is { } b) traces.Add(ChartStyle.Reference(b.Name, b.Value, 0.0, (double)lastStep));
        var chart = CSharpChart.Combine(traces)
            .WithXAxisStyle<double, double, string>(TitleText: "optimizer step")
            .WithYAxisStyle<double, double, string>(TitleText: "mean token loss (nats)");
        return ChartStyle.Titled(chart, title, subtitle);
    }
}
