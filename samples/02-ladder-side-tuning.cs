#:project ../src/LoraShell.Charts/LoraShell.Charts.csproj
#:property PublishAot=false
#:property JsonSerializerIsReflectionEnabledByDefault=true
// The dotnet-run twin of notebooks/02-ladder-side-tuning.ipynb: `dotnet run samples/02-ladder-side-tuning.cs [output folder]`.
// Every number comes from LoraShell.Core.Experiments; this file only prints and charts.
using LoraShell.Core.Experiments;
using LoraShell.Charts;

string output = Path.GetFullPath(args.Length > 0 ? args[0] : "out/samples/02-ladder-side-tuning");
Directory.CreateDirectory(output);
var setup = new ExperimentSetup { SharedFolder = ExperimentSetup.FindShared(), Steps = 60, BatchSize = 8, SequenceLength = 128, MaxEvalWindows = 64, LoraLearningRate = 3e-3 };

Console.WriteLine("Backpropagation depth sets training cost: LoRA trains few parameters but still backpropagates through");
Console.WriteLine("the whole backbone; a ladder side network takes the backbone's hidden states without autograd.\n");
Console.WriteLine($"Full vs LoRA vs Ladder on Tiny Shakespeare ({setup.Steps} steps, batch {setup.BatchSize} x {setup.SequenceLength}, seed {setup.Seed})");
var rows = LadderExperiments.Compare(setup, reductionFactor: 4, log: m => Console.WriteLine($"   training: {m}"));
Console.WriteLine($"{"method",-24} {"trainable",10} {"peak MiB",9} {"growth MiB",11} {"ms/step",8} {"val before",11} {"val after",10}");
foreach (var r in rows)
    Console.WriteLine($"{r.Method,-24} {r.TrainableParameters,10:N0} {r.PeakMemoryMiB,9:F0} {r.TrainingMemoryMiB,11:F0} {r.MillisecondsPerStep,8:F1} {r.ValidationBefore,11:F4} {r.ValidationAfter,10:F4}");
foreach (var r in rows.Where(r => r.Gates is not null))
    Console.WriteLine($"   gates μ_i of {r.Method}: {string.Join(", ", r.Gates!.Select(g => g.ToString("F3")))}");

var chart = ExperimentCharts.MethodCosts(rows, baseValidationLoss: rows[0].ValidationBefore);
Console.WriteLine($"   charts: {ChartHtml.Save(chart, Path.Combine(output, "methods.html")).FullName}, {ChartImage.SavePng(chart, Path.Combine(output, "methods.png")).FullName}");

Console.WriteLine("\nMagnitude-pruned or random start, five seeds each (one run per init cannot tell them apart)");
var trials = LadderExperiments.InitAcrossSeeds(setup, new long[] { 1, 2, 3, 4, 5 }, reductionFactor: 4, log: m => Console.WriteLine($"   training: {m}"));
Console.WriteLine($"{"init",-10} {"runs",5} {"mean",8} {"sd",8} {"lowest",8} {"highest",8}");
foreach (var s in LadderExperiments.Summarize(trials))
    Console.WriteLine($"{s.Init,-10} {s.Runs,5} {s.Mean,8:F4} {s.StandardDeviation,8:F4} {s.Min,8:F4} {s.Max,8:F4}");
var gap = LadderExperiments.Gap(trials);
Console.WriteLine($"   {gap}");
Console.WriteLine($"   {gap.Verdict}");

Console.WriteLine("\nOn the paper's own architecture: a small random T5 trained text-to-text on SST-2 (\"sst2 sentence: ...\" -> positive/negative), accuracy by generation");
var t5 = T5Experiments.Compare(setup with { Steps = 200, BatchSize = 16, SequenceLength = 64 }, Path.Combine(output, "t5"), log: m => Console.WriteLine($"   training: {m}"));
Console.WriteLine($"{"method",-16} {"trainable",10} {"share",8} {"ms/step",8} {"val before",11} {"val after",10} {"acc before",11} {"acc after",10}");
foreach (var r in t5)
    Console.WriteLine($"{r.Cost.Method,-16} {r.Cost.TrainableParameters,10:N0} {r.TrainableShare,8:P2} {r.Cost.MillisecondsPerStep,8:F1} {r.Cost.ValidationBefore,11:F4} {r.Cost.ValidationAfter,10:F4} {r.AccuracyBefore,11:P1} {r.AccuracyAfter,10:P1}");

Console.WriteLine("\nT5-base at the paper's batch of 100 (inputs 128, targets 4), estimated; the paper: LST saves 69% against full fine-tuning, LoRA and Adapters about 26%");
foreach (var r in T5Experiments.PaperSettingMemory())
    Console.WriteLine($"{r.Method,-8} trainable {r.TrainableShare,7:P2}  {r.TotalGB,6:F2} GB  saved vs full {r.SavedVsFull,4:P0}");
