using LoraShell.Core.Delta;
using Plotly.NET;
using Plotly.NET.CSharp;

namespace LoraShell.Charts;

/// <summary>Charts of Invoke-SvdDelta reports: singular-value spectra and error against rank.</summary>
public static class SvdCharts
{
    /// <summary>Relative error of the best rank-k approximation, from the leading spectrum and the delta's norm.</summary>
    public static double[] OptimalErrorByRank(SvdDeltaReport r)
    {
        double total = r.DeltaNorm * r.DeltaNorm, kept = 0;
        var errors = new double[r.Spectrum.Length + 1];
        errors[0] = 1;
        for (int i = 0; i < r.Spectrum.Length; i++)
        {
            kept += r.Spectrum[i] * r.Spectrum[i];
            errors[i + 1] = total == 0 ? 0 : Math.Sqrt(Math.Max(0, total - kept) / total);
        }
        return errors;
    }

    /// <summary>Two panels: the spectra (log scale) and the error-vs-rank curves, with each matrix's chosen rank marked.</summary>
    public static GenericChart SpectraAndErrors(IReadOnlyList<SvdDeltaReport> reports, string title = "SVD of weight deltas", int maxMatrices = 12)
    {
        var shown = reports.Where(r => r.Status == DeltaStatus.Compressed && r.Spectrum.Length > 0).Take(maxMatrices).ToList();
        var spectra = shown.Select(r => Plotly.NET.CSharp.Chart.Line<double, double, string>(
            x: Enumerable.Range(1, r.Spectrum.Length).Select(i => (double)i).ToArray(), y: r.Spectrum, Name: r.Name, ShowMarkers: false)).ToList();
        var spectrum = Plotly.NET.CSharp.Chart.Combine(spectra)
            .WithXAxisStyle<double, double, string>(TitleText: "index i")
            .WithYAxisStyle<double, double, string>(TitleText: "singular value σ_i", AxisType: StyleParam.AxisType.Log);
        var curves = new List<GenericChart>();
        foreach (var r in shown)
        {
            var e = OptimalErrorByRank(r);
            curves.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(x: Enumerable.Range(0, e.Length).Select(i => (double)i).ToArray(), y: e, Name: $"{r.Name} optimum", ShowMarkers: false));
            curves.Add(Plotly.NET.CSharp.Chart.Point<double, double, string>(x: new[] { (double)r.Rank }, y: new[] { r.RelativeError }, Name: $"{r.Name} measured (r={r.Rank})"));
        }
        var errors = Plotly.NET.CSharp.Chart.Combine(curves)
            .WithXAxisStyle<double, double, string>(TitleText: "rank r")
            .WithYAxisStyle<double, double, string>(TitleText: "relative Frobenius error");
        var grid = Plotly.NET.CSharp.Chart.Grid(new[] { spectrum, errors }, 2, 1);
        return Plotly.NET.Chart.withTitle(title, null).Invoke(grid);
    }
}
