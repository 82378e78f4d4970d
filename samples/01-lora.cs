#:project ../src/LoraShell.Charts/LoraShell.Charts.csproj
#:property PublishAot=false
#:property JsonSerializerIsReflectionEnabledByDefault=true
// The dotnet-run twin of notebooks/01-lora.ipynb: `dotnet run samples/01-lora.cs [output folder]`.
// Every number comes from LoraShell.Core.Experiments; this file only prints and charts.
using LoraShell.Core.Experiments;
using LoraShell.Charts;

string output = Path.GetFullPath(args.Length > 0 ? args[0] : "out/samples/01-lora");
Directory.CreateDirectory(output);
var setup = new ExperimentSetup { SharedFolder = ExperimentSetup.FindShared(), Steps = 60, BatchSize = 8, SequenceLength = 128, MaxEvalWindows = 64 };

Console.WriteLine("1. LoRA's trainable parameters: r·(in + out) per matrix instead of in·out (stories260K)");
Console.WriteLine("   (up to r = 16: v_proj is 32 x 64, so r cannot exceed 32, and from r = 21.3 a v_proj adapter outgrows the matrix)");
Console.WriteLine($"{"rank",5} {"q,v LoRA",10} {"q,v dense",10} {"share",7} {"all-linear LoRA",16} {"all-linear dense",17} {"share",7}");
foreach (var r in LoraExperiments.RankSweep(setup))
    Console.WriteLine($"{r.Rank,5} {r.QvParameters,10:N0} {r.DenseQvParameters,10:N0} {r.QvShareOfDense,7:P1} {r.AllLinearParameters,16:N0} {r.DenseAllLinearParameters,17:N0} {r.AllLinearShareOfDense,7:P1}");

Console.WriteLine($"\n2. Training on Tiny Shakespeare: {setup.Steps} steps, batch {setup.BatchSize} x {setup.SequenceLength}, seed {setup.Seed}");
var runs = LoraExperiments.CompareMethods(setup, new[] { 1, 4, 16 }, log: m => Console.WriteLine($"   training: {m}"));
Console.WriteLine($"{"method",-22} {"trainable",10} {"val before",11} {"val after",10} {"ms/step",8} {"peak MiB",9}");
foreach (var run in runs)
    Console.WriteLine($"{run.Label,-22} {run.Result.TrainableParameters,10:N0} {run.ValidationBefore,11:F4} {run.ValidationAfter,10:F4} {run.Result.MillisecondsPerStep,8:F1} {run.Result.PeakMemoryMiB,9:F0}");
var chart = TrainingCharts.LossCurves(runs.Select(r => (r.Label, r.Result)).ToList(), "LoRA ranks vs full fine-tuning on Tiny Shakespeare",
    baseline: ("base model before training", runs[0].ValidationBefore!.Value),
    subtitle: $"{setup.Steps} steps of batch {setup.BatchSize} x {setup.SequenceLength} tokens, validation on {setup.MaxEvalWindows} held-out windows");
Console.WriteLine($"   charts: {ChartHtml.Save(chart, Path.Combine(output, "loss-curves.html")).FullName}, {ChartImage.SavePng(chart, Path.Combine(output, "loss-curves.png")).FullName}");

Console.WriteLine("\n3. Merge: W0 + scaling·B·A gives the same logits, and unmerge restores W0");
var (parity, before, after) = LoraExperiments.MergeAndGenerate(setup);
Console.WriteLine($"   max |Δlogit| {parity.MaxAbsDifference:E2} (largest logit {parity.MaxAbsLogit:F2}), mean {parity.MeanAbsDifference:E2}; unmerge restores W0: {parity.UnmergeRestoresBase}");
Console.WriteLine($"   before training: {before}");
Console.WriteLine($"   after training:  {after}");

Console.WriteLine($"\n4. Variants on the same budget: LoRA, DoRA and LoRA+ on every Linear layer at r = 4");
var variants = LoraExperiments.CompareVariants(setup, rank: 4, loraPlusRatio: 16, log: m => Console.WriteLine($"   training: {m}"));
Console.WriteLine($"{"variant",-22} {"trainable",10} {"val before",11} {"val after",10} {"ms/step",8}");
foreach (var run in variants)
    Console.WriteLine($"{run.Label,-22} {run.Result.TrainableParameters,10:N0} {run.ValidationBefore,11:F4} {run.ValidationAfter,10:F4} {run.Result.MillisecondsPerStep,8:F1}");
var variantChart = TrainingCharts.LossCurves(variants.Select(r => (r.Label, r.Result)).ToList(), "LoRA, DoRA and LoRA+ on Tiny Shakespeare",
    baseline: ("base model before training", variants[0].ValidationBefore!.Value),
    subtitle: $"all-linear r = 4, {setup.Steps} steps of batch {setup.BatchSize} x {setup.SequenceLength} tokens");
Console.WriteLine($"   charts: {ChartHtml.Save(variantChart, Path.Combine(output, "variants.html")).FullName}, {ChartImage.SavePng(variantChart, Path.Combine(output, "variants.png")).FullName}");
