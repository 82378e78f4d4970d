#:project ../src/LoraShell.Charts/LoraShell.Charts.csproj
#:property PublishAot=false
#:property JsonSerializerIsReflectionEnabledByDefault=true
// The dotnet-run twin of notebooks/03-svd-delta.ipynb: `dotnet run samples/03-svd-delta.cs [output folder]`.
// Every number comes from LoraShell.Core.Experiments; this file only prints and charts.
using LoraShell.Core.Experiments;
using LoraShell.Charts;

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
var spectrumChart = ExperimentCharts.Spectra(spectra, subtitle: $"{spectra.Count} of the 35 adapted matrices: q_proj, v_proj and down_proj of the first and last layers");
Console.WriteLine($"   charts: {ChartHtml.Save(spectrumChart, Path.Combine(output, "spectra.html")).FullName}, {ChartImage.SavePng(spectrumChart, Path.Combine(output, "spectra.png")).FullName}");

Console.WriteLine("\n3. Merged rank-r deltas: validation loss, error and storage by rank (norms and embeddings stored exactly)");
var ranks = new[] { 1, 2, 4, 8, 16, 32 };
var rows = SvdExperiments.MergedLossByRank(setup, ft, Path.Combine(output, "work"), ranks);
Console.WriteLine($"{"rank",5} {"val loss",9} {"mean rel. error",16} {"optimal",8} {"adapter KB",11}");
foreach (var r in rows) Console.WriteLine($"{r.Rank,5} {r.ValidationLoss,9:F4} {r.MeanRelativeError,16:F4} {r.MeanOptimalError,8:F4} {r.AdapterBytes / 1024.0,11:F1}");
Console.WriteLine($"   full fine-tuning: {ft.FineTunedValidationLoss:F4}; base: {ft.BaseValidationLoss:F4}; smallest rank within 0.05 nats of full FT: {SvdExperiments.SmallestRankWithin(rows, ft.FineTunedValidationLoss)?.ToString() ?? "none"}");
var lossChart = ExperimentCharts.LossByRank(rows, ft);
Console.WriteLine($"   charts: {ChartHtml.Save(lossChart, Path.Combine(output, "loss-by-rank.html")).FullName}, {ChartImage.SavePng(lossChart, Path.Combine(output, "loss-by-rank.png")).FullName}");
