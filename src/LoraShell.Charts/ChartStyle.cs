using Plotly.NET;
using Plotly.NET.CSharp;
using CSharpChart = Plotly.NET.CSharp.Chart;

namespace LoraShell.Charts;

/// <summary>What every LoraShell chart shares: one colour per run or series, and reference lines.</summary>
public static class ChartStyle
{
    // Plotly's own default sequence, so charts look like Plotly charts, but assigned by us: a run's
    // training and validation curves (or a matrix's curve and its measured point) then share one colour.
    static readonly string[] Palette = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };

    /// <summary>The i-th colour of the palette (it repeats after ten).</summary>
    public static Color ColorAt(int index) => Color.fromHex(Palette[index % Palette.Length]);

    /// <summary>
    /// A dashed horizontal line (grey unless <paramref name="color"/> says otherwise) at <paramref name="value"/> from <paramref name="from"/> to
    /// <paramref name="to"/>, named in the legend with its value (a before-training loss, chance accuracy).
    /// </summary>
    public static GenericChart Reference<TX>(string name, double value, TX from, TX to, Color? color = null) where TX : IConvertible
        => CSharpChart.Line<TX, double, string>(x: new[] { from, to }, y: new[] { value, value },
            Name: $"{name} ({value.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)})", ShowMarkers: false,
            LineColor: color ?? Color.fromHex("#555555"), LineDash: StyleParam.DrawingStyle.Dash);

    /// <summary>The title, with a second line in smaller type (what the chart leaves out, units, the setup).</summary>
    public static GenericChart Titled(GenericChart chart, string title, string? subtitle = null)
        => Plotly.NET.Chart.withTitle(subtitle is null ? title : $"{title}<br><sub>{System.Net.WebUtility.HtmlEncode(subtitle)}</sub>", null).Invoke(chart);
}
