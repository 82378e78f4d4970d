#:project ../src/LoraShell.Core/LoraShell.Core.csproj
#:property PublishAot=false
#:property JsonSerializerIsReflectionEnabledByDefault=true
// The dotnet-run twin of notebooks/03-svd-delta.ipynb: `dotnet run samples/03-svd-delta.cs [output folder]`.
// Every number comes from LoraShell.Core.Experiments; this file only prints and charts.
using LoraShell.Core.Experiments;
using LoraShell.Core.Reporting;
using Plotly.NET.CSharp;

string output = Path.GetFullPath(args.Length > 0 ? args[0] : "out/samples/03-svd-delta");
Directory.CreateDirectory(output);
var setup = new ExperimentSetup { SharedFolder = ExperimentSetup.FindShared(), Steps = 80, BatchSize = 8, SequenceLength = 128, MaxEvalWindows = 64 };

Console.WriteLine($"1. Full fine-tuning of stories260K on Tiny Shakespeare ({setup.Steps} steps, batch {setup.BatchSize} x {setup.SequenceLength})");
var ft = SvdExperiments.FineTune(setup, Path.Combine(output, "work"));
Console.WriteLine($"   validation loss: base {ft.BaseValidationLoss:F4} -> fine-tuned {ft.FineTunedValidationLoss:F4}");

Console.WriteLine("\n2. Singular values of ΔW = W_ft − W0 (energy kept by the top r)");
var spectra = SvdExperiments.Spectra(ft.BaseFolder, ft.FineTunedFolder);
foreach (var s in spectra)
    Console.WriteLine($"   {s.Name,-40} [{s.Rows}x{s.Cols}] σ1 {s.Singular[0]:F4}  energy r=1 {s.EnergyByRank[1]:P1}  r=4 {s.EnergyByRank[Math.Min(4, s.EnergyByRank.Length - 1)]:P1}  r=16 {s.EnergyByRank[Math.Min(16, s.EnergyByRank.Length - 1)]:P1}");
var spectrumChart = Plotly.NET.CSharp.Chart.Combine(spectra.Select(s => Plotly.NET.CSharp.Chart.Line<double, double, string>(
        x: Enumerable.Range(1, s.Singular.Length).Select(i => (double)i).ToArray(), y: s.Singular, Name: s.Name, ShowMarkers: false)))
    .WithYAxisStyle<double, double, string>(TitleText: "σ_i", AxisType: Plotly.NET.StyleParam.AxisType.Log)
    .WithXAxisStyle<double, double, string>(TitleText: "i");
Console.WriteLine($"   chart: {ChartHtml.Save(spectrumChart, Path.Combine(output, "spectra.html")).FullName}");

Console.WriteLine("\n3. Merged rank-r deltas: validation loss, error and storage by rank (norms and embeddings stored exactly)");
var ranks = new[] { 1, 2, 4, 8, 16, 32 };
var rows = SvdExperiments.MergedLossByRank(setup, ft, Path.Combine(output, "work"), ranks);
Console.WriteLine($"{"rank",5} {"val loss",9} {"mean rel. error",16} {"optimal",8} {"adapter KB",11}");
foreach (var r in rows) Console.WriteLine($"{r.Rank,5} {r.ValidationLoss,9:F4} {r.MeanRelativeError,16:F4} {r.MeanOptimalError,8:F4} {r.AdapterBytes / 1024.0,11:F1}");
Console.WriteLine($"   full fine-tuning: {ft.FineTunedValidationLoss:F4}; base: {ft.BaseValidationLoss:F4}; smallest rank within 0.05 nats of full FT: {SvdExperiments.SmallestRankWithin(rows, ft.FineTunedValidationLoss)?.ToString() ?? "none"}");
var lossChart = Plotly.NET.CSharp.Chart.Combine(new[]
{
    Plotly.NET.CSharp.Chart.Line<double, double, string>(x: rows.Select(r => (double)r.Rank).ToArray(), y: rows.Select(r => r.ValidationLoss).ToArray(), Name: "merged rank-r delta"),
    Plotly.NET.CSharp.Chart.Line<double, double, string>(x: new[] { 1.0, ranks[^1] }, y: new[] { ft.FineTunedValidationLoss, ft.FineTunedValidationLoss }, Name: "full fine-tuning", ShowMarkers: false),
    Plotly.NET.CSharp.Chart.Line<double, double, string>(x: new[] { 1.0, ranks[^1] }, y: new[] { ft.BaseValidationLoss, ft.BaseValidationLoss }, Name: "base model", ShowMarkers: false),
}).WithXAxisStyle<double, double, string>(TitleText: "rank r", AxisType: Plotly.NET.StyleParam.AxisType.Log).WithYAxisStyle<double, double, string>(TitleText: "validation loss");
Console.WriteLine($"   chart: {ChartHtml.Save(lossChart, Path.Combine(output, "loss-by-rank.html")).FullName}");
