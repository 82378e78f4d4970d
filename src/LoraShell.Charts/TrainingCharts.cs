using LoraShell.Core.Training;
using Plotly.NET;
using Plotly.NET.CSharp;

namespace LoraShell.Charts;

/// <summary>Charts of training runs.</summary>
public static class TrainingCharts
{
    /// <summary>Training loss per step (lines) and validation loss (lines with markers) of each run, on one chart.</summary>
    public static GenericChart LossCurves(IReadOnlyList<(string Label, TrainingResult Result)> runs, string title = "Loss")
    {
        var traces = new List<GenericChart>();
        foreach (var (label, r) in runs)
        {
            var steps = Enumerable.Range(1, r.Losses.Count).Select(i => (double)i).ToArray();
            traces.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(x: steps, y: r.Losses.ToArray(), Name: $"{label} train", ShowMarkers: false));
            if (r.Evaluations.Count > 0)
                traces.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(
                    x: r.Evaluations.Select(e => (double)e.Step).ToArray(), y: r.Evaluations.Select(e => e.Loss).ToArray(),
                    Name: $"{label} validation", ShowMarkers: true));
        }
        var chart = Plotly.NET.CSharp.Chart.Combine(traces);
        chart = Plotly.NET.Chart.withTitle(title, null).Invoke(chart);
        return chart.WithXAxisStyle<double, double, string>(TitleText: "step").WithYAxisStyle<double, double, string>(TitleText: "mean token loss (nats)");
    }
}
