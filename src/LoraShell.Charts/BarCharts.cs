using Microsoft.FSharp.Core;
using Plotly.NET;
using Plotly.NET.CSharp;
using CSharpChart = Plotly.NET.CSharp.Chart;

namespace LoraShell.Charts;

/// <summary>One bar: its series (colour), its name (position), its value and, where measured, the spread around it.</summary>
public sealed record Bar(string Series, string Name, double Value, double? Low = null, double? High = null);

/// <summary>Grouped bar charts of named values (benchmark tables, method comparisons).</summary>
public static class BarCharts
{
    /// <summary>
    /// One bar group per name, one colour per series, in first-seen order. Bars with a Low and High
    /// (a benchmark's fastest and slowest run around its median) get error bars spanning them;
    /// <paramref name="baseline"/> adds a dashed reference line (chance accuracy, the untrained model).
    /// </summary>
    public static GenericChart Grouped(IReadOnlyList<Bar> bars, string title, string? valueAxis = null,
        (string Name, double Value)? baseline = null, string? subtitle = null)
    {
        var groups = bars.GroupBy(b => b.Series).ToList();
        // A single series needs no legend entry of its own (its name is the default "value" anyway).
        bool oneSeries = groups.Count == 1;
        var traces = groups.Select((g, i) =>
        {
            var series = g.ToList();
            var column = CSharpChart.Column<double, string, string>(values: series.Select(b => b.Value).ToArray(), Keys: series.Select(b => b.Name).ToArray(),
                Name: g.Key, MarkerColor: ChartStyle.ColorAt(i), ShowLegend: !oneSeries);
            if (series.All(b => b.Low is null && b.High is null)) return column;
            // Plotly.NET's F# optional arguments reach C# as options: null is "not given".
            IEnumerable<double> Plus() => series.Select(b => Math.Max(0, (b.High ?? b.Value) - b.Value)).ToArray();
            IEnumerable<double> Minus() => series.Select(b => Math.Max(0, b.Value - (b.Low ?? b.Value))).ToArray();
            return Plotly.NET.Chart.withYErrorStyle<double, double>(FSharpOption<bool>.Some(true), null, FSharpOption<bool>.Some(false),
                FSharpOption<IEnumerable<double>>.Some(Plus()), FSharpOption<IEnumerable<double>>.Some(Minus()),
                null, null, null, null, null, FSharpOption<Color>.Some(Color.fromHex("#333333")), null, null).Invoke(column);
        }).ToList();
        if (baseline is { } line)
        {
            var names = bars.Select(b => b.Name).Distinct().ToList();
            traces.Add(ChartStyle.Reference(line.Name, line.Value, names[0], names[^1]));
        }
        var chart = CSharpChart.Combine(traces);
        if (valueAxis is not null) chart = chart.WithYAxisStyle<double, double, string>(TitleText: valueAxis);
        return ChartStyle.Titled(chart, title, subtitle);
    }
}
