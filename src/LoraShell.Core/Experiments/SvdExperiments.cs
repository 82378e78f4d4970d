using LoraShell.Core.Delta;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Training;

namespace LoraShell.Core.Experiments;

/// <summary>A full fine-tune saved beside its base, with both validation losses.</summary>
public sealed record FullFineTune(string BaseFolder, string FineTunedFolder, double BaseValidationLoss, double FineTunedValidationLoss, TrainingResult Training);

/// <summary>One matrix's delta spectrum: σ_i, the energy kept by the top r, and the Eckart–Young error at rank r (index r).</summary>
public sealed record DeltaSpectrum(string Name, long Rows, long Cols, double[] Singular, double[] EnergyByRank, double[] OptimalErrorByRank);

/// <summary>The merged model at one SVD rank.</summary>
public sealed record RankedDelta(int Rank, double ValidationLoss, long AdapterBytes, double MeanRelativeError, double WorstRelativeError, double MeanOptimalError);

/// <summary>The SVD-delta experiments of notebooks/03-svd-delta.ipynb and samples/03-svd-delta.cs.</summary>
public static class SvdExperiments
{
    /// <summary>Fully fine-tunes the base on the target domain and saves base and result as HF folders under <paramref name="folder"/>.</summary>
    public static FullFineTune FineTune(ExperimentSetup setup, string folder)
    {
        Directory.CreateDirectory(folder);
        using var model = setup.LoadBase();
        string baseFolder = Path.Combine(folder, "base");
        model.SaveHuggingFace(baseFolder, overwrite: true);
        // The experiment's scratch folder: a re-run replaces the previous run's output (Overwrite), as the base folder above.
        var result = Trainer.Run(model, setup.Training(TrainingMethod.Full) with { OutputPath = Path.Combine(folder, "full-ft"), Overwrite = true });
        return new FullFineTune(baseFolder, result.ModelPath!, result.InitialValidationLoss ?? double.NaN, result.FinalValidationLoss ?? double.NaN, result);
    }

    /// <summary>Exact spectra of ΔW for the named matrices (default: layer 0's and the last layer's q, v and down projections).</summary>
    public static List<DeltaSpectrum> Spectra(string baseFolder, string fineTunedFolder, IEnumerable<string>? names = null)
    {
        using var b = SafetensorsCheckpoint.Open(baseFolder);
        using var f = SafetensorsCheckpoint.Open(fineTunedFolder);
        var chosen = names?.ToList() ?? b.Names.Where(n => System.Text.RegularExpressions.Regex.IsMatch(n, @"layers\.(0|4)\.(self_attn\.(q|v)_proj|mlp\.down_proj)\.weight$")).OrderBy(n => n).ToList();
        var result = new List<DeltaSpectrum>();
        foreach (var name in chosen)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var delta = f.Read(name).to(TorchSharp.torch.ScalarType.Float32) - b.Read(name).to(TorchSharp.torch.ScalarType.Float32);
            using var svd = TruncatedSvd.Exact(delta, 1);
            var s = svd.FullSpectrum!.data<double>().ToArray();
            double total = s.Sum(x => x * x), kept = 0;
            var energy = new double[s.Length + 1];
            var error = new double[s.Length + 1];
            error[0] = 1;
            for (int i = 0; i < s.Length; i++)
            {
                kept += s[i] * s[i];
                energy[i + 1] = total == 0 ? 1 : kept / total;
                error[i + 1] = total == 0 ? 0 : Math.Sqrt(Math.Max(0, total - kept) / total);
            }
            result.Add(new DeltaSpectrum(name, delta.shape[0], delta.shape[1], s, energy, error));
        }
        return result;
    }

    /// <summary>
    /// For each rank: compress ΔW (exact SVD; norms and embeddings stored exactly), merge into the base,
    /// and measure validation loss, adapter size and errors.
    /// </summary>
    public static List<RankedDelta> MergedLossByRank(ExperimentSetup setup, FullFineTune ft, string folder, IEnumerable<int> ranks, Action<string>? log = null)
    {
        using var probe = setup.LoadBase();
        var corpus = TokenCorpus.Load(new[] { setup.DataPath }, null, 0.1, probe.RequireTokenizer(), Path.Combine(folder, ".cache"));
        var validation = new BatchSampler(corpus.Validation, setup.SequenceLength, setup.Seed);
        var options = setup.Training(TrainingMethod.Full);
        var rows = new List<RankedDelta>();
        foreach (int r in ranks)
        {
            string output = Path.Combine(folder, $"delta-r{r}");
            var reports = new List<SvdDeltaReport>();
            var summary = SvdDeltaCompressor.Run(new SvdDeltaOptions
            {
                BasePath = ft.BaseFolder, FineTunedPath = ft.FineTunedFolder, OutputPath = output, Overwrite = true,
                Policy = new RankPolicy { Rank = r }, IncludeNonMatrix = true,
            }, reports.Add);
            using var merged = LoadedModel.Load(new ModelLoadOptions { Path = ft.BaseFolder, TokenizerPath = setup.TokenizerPath });
            PeftAdapterFormat.Load(merged.Adapters, output, "default");
            merged.Adapters.Merge(null, safe: true);
            double loss = Trainer.Evaluate(merged.Model, validation, options);
            var compressed = reports.Where(x => x.Status == DeltaStatus.Compressed).ToList();
            rows.Add(new RankedDelta(r, loss, summary.AdapterFileBytes, compressed.Average(x => x.RelativeError), summary.WorstRelativeError,
                compressed.Average(x => x.OptimalError ?? double.NaN)));
            log?.Invoke($"rank {r}: validation loss {loss:F4}, adapter {summary.AdapterFileBytes:N0} bytes");
        }
        return rows;
    }

    /// <summary>The smallest rank whose merged validation loss is within <paramref name="tolerance"/> nats of full fine-tuning, or null.</summary>
    public static int? SmallestRankWithin(IEnumerable<RankedDelta> rows, double fullFineTuneLoss, double tolerance = 0.05)
        => rows.OrderBy(r => r.Rank).FirstOrDefault(r => r.ValidationLoss <= fullFineTuneLoss + tolerance)?.Rank;
}
