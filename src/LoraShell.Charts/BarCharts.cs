using Plotly.NET;
using Plotly.NET.CSharp;
using CSharpChart = Plotly.NET.CSharp.Chart;

namespace LoraShell.Charts;

/// <summary>Grouped bar charts of named values (benchmark tables, method comparisons).</summary>
public static class BarCharts
{
    /// <summary>One bar group per name, one colour per series, in first-seen order.</summary>
    public static GenericChart Grouped(IReadOnlyList<(string Series, string Name, double Value)> bars, string title, string? valueAxis = null)
    {
        var series = bars.GroupBy(b => b.Series).Select(g => CSharpChart.Column<double, string, string>(
            values: g.Select(b => b.Value).ToArray(), Keys: g.Select(b => b.Name).ToArray(), Name: g.Key));
        var chart = Plotly.NET.Chart.withTitle(title, null).Invoke(CSharpChart.Combine(series));
        return valueAxis is null ? chart : chart.WithYAxisStyle<double, double, string>(TitleText: valueAxis);
    }
}
