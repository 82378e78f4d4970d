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

    /// <summary>
    /// Two panels: the spectra (log scale) and the error-vs-rank curves, each matrix in one colour with
    /// its measured error at the chosen rank marked. At most <paramref name="maxMatrices"/> matrices are
    /// drawn, and the subtitle says so when that is a subset.
    /// </summary>
    public static GenericChart SpectraAndErrors(IReadOnlyList<SvdDeltaReport> reports, string title = "SVD of weight deltas", int maxMatrices = 12)
    {
        var compressed = reports.Where(r => r.Status == DeltaStatus.Compressed && r.Spectrum.Length > 0).ToList();
        var shown = compressed.Take(maxMatrices).ToList();
        var spectra = new List<GenericChart>();
        var curves = new List<GenericChart>();
        for (int i = 0; i < shown.Count; i++)
        {
            var r = shown[i];
            var color = ChartStyle.ColorAt(i);
            spectra.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(
                x: Enumerable.Range(1, r.Spectrum.Length).Select(k => (double)k).ToArray(), y: r.Spectrum, Name: r.Name, ShowMarkers: false, LineColor: color,
                ShowLegend: false));
            var e = OptimalErrorByRank(r);
            curves.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(x: Enumerable.Range(0, e.Length).Select(k => (double)k).ToArray(), y: e,
                Name: r.Name, ShowMarkers: false, LineColor: color));
            curves.Add(Plotly.NET.CSharp.Chart.Point<double, double, string>(x: new[] { (double)r.Rank }, y: new[] { r.RelativeError },
                Name: $"{r.Name} measured at r={r.Rank}", MarkerColor: color, ShowLegend: false));
        }
        var spectrum = Plotly.NET.CSharp.Chart.Combine(spectra)
            .WithXAxisStyle<double, double, string>(TitleText: "singular value index i")
            .WithYAxisStyle<double, double, string>(TitleText: "singular value σ_i (log scale)", AxisType: StyleParam.AxisType.Log);
        var errors = Plotly.NET.CSharp.Chart.Combine(curves)
            .WithXAxisStyle<double, double, string>(TitleText: "rank r")
            .WithYAxisStyle<double, double, string>(TitleText: "relative Frobenius error ‖ΔW − ΔW_r‖/‖ΔW‖");
        var grid = Plotly.NET.CSharp.Chart.Grid(new[] { spectrum, errors }, 2, 1);
        string subset = shown.Count < compressed.Count
            ? $"showing the first {shown.Count} of {compressed.Count} compressed matrices; lines: best possible error (Eckart–Young), dots: measured at the chosen rank"
            : "lines: best possible error (Eckart–Young), dots: measured at the chosen rank";
        return ChartStyle.Titled(grid, title, subset);
    }
}
