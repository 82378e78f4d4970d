using System.Diagnostics;
using System.Text.RegularExpressions;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using static TorchSharp.torch;

namespace LoraShell.Core.Delta;

/// <summary>
/// Compresses a full fine-tune into a PEFT LoRA adapter: for every target matrix, ΔW = W_ft − W0 is
/// factorised by truncated SVD and stored as lora_B = U_r·diag(σ_r) [out, r], lora_A = V_rᵀ [r, in]
/// with every module's scaling exactly 1. Tensors stream from disk one at a time, and factors stream
/// to disk, so memory stays near a few copies of the largest matrix whatever the model size.
/// </summary>
public static class SvdDeltaCompressor
{
    const int SpectrumKept = 512;
    const int ResidualRows = 256;

    public static SvdDeltaSummary Run(SvdDeltaOptions o, Action<SvdDeltaReport> onReport,
        Action<int, int, string>? progress = null, CancellationToken cancel = default)
    {
        o.Policy.Validate();
        var clock = Stopwatch.StartNew();
        using var baseCk = SafetensorsCheckpoint.Open(o.BasePath);
        using var ftCk = SafetensorsCheckpoint.Open(o.FineTunedPath);
        string output = Path.GetFullPath(o.OutputPath);
        if (Directory.Exists(output)) AtomicFile.RefuseExisting(output, o.Overwrite);

        var onlyBase = baseCk.Names.Where(n => !ftCk.Contains(n)).OrderBy(n => n).ToList();
        var onlyFt = ftCk.Names.Where(n => !baseCk.Contains(n)).OrderBy(n => n).ToList();
        if ((onlyBase.Count > 0 || onlyFt.Count > 0) && !o.SkipMissing)
            throw LoraShellException.InvalidData("TensorMissing",
                $"The checkpoints do not hold the same tensors: only in base {onlyBase.Count} ({Preview(onlyBase)}); only in fine-tuned {onlyFt.Count} ({Preview(onlyFt)}). Use -SkipMissing to compress the shared ones.", onlyBase.Concat(onlyFt).FirstOrDefault());

        var names = baseCk.Names.Where(ftCk.Contains).OrderBy(n => n, StringComparer.Ordinal).ToList();
        foreach (var n in names)
            if (!baseCk.Entry(n).Shape.SequenceEqual(ftCk.Entry(n).Shape))
                throw LoraShellException.InvalidData("ShapeMismatch",
                    $"Tensor '{n}' is [{string.Join(", ", baseCk.Entry(n).Shape)}] in the base but [{string.Join(", ", ftCk.Entry(n).Shape)}] in the fine-tuned checkpoint.", n);

        var layout = DeltaLayout.Of(o.BasePath);
        var isTarget = TargetPredicate(o.TargetModules, layout);
        var matrices = names.Where(n => baseCk.Entry(n).Shape.Length == 2 && isTarget(n)).ToList();
        if (o.Policy.Rank is int fixedRank)
            foreach (var n in matrices)
            {
                var s = baseCk.Entry(n).Shape;
                if (fixedRank > Math.Min(s[0], s[1]))
                    throw LoraShellException.InvalidArgument("RankTooLarge", $"Rank {fixedRank} is larger than min(m, n) = {Math.Min(s[0], s[1])} of '{n}' [{s[0]} x {s[1]}].", n);
            }

        var reports = new List<SvdDeltaReport>();
        void Emit(SvdDeltaReport r) { reports.Add(r); onReport(r); }
        foreach (var n in onlyBase.Concat(onlyFt)) Emit(new SvdDeltaReport { Name = n, Status = DeltaStatus.Missing, Method = o.Method.ToString() });

        var warnings = new List<string>();
        long adapterBytes = 0;
        string parent = Path.GetDirectoryName(output)!;
        Directory.CreateDirectory(parent);
        // Factors stream to a scratch file beside the output; the adapter folder appears atomically at the end.
        var factors = new List<(string Module, int Rank, Tensor? A, Tensor? B)>();
        using var writer = new SafetensorsStreamWriter(parent);
        var exactTensors = new List<string>();
        int done = 0, total = names.Count;

        foreach (var name in names)
        {
            cancel.ThrowIfCancellationRequested();
            progress?.Invoke(done++, total, name);
            bool matrix = matrices.Contains(name);
            var r = matrix ? CompressOne(baseCk, ftCk, name, layout, o, writer, o.UniformRank ? factors : null)
                           : NonMatrix(baseCk, ftCk, name, layout, o, writer, exactTensors);
            Emit(r);
            NativeMemory.Trim();
        }
        progress?.Invoke(total, total, "");

        var compressed = reports.Where(r => r.Status == DeltaStatus.Compressed).ToList();
        int maxRank = compressed.Count == 0 ? 0 : compressed.Max(r => r.Rank);
        if (o.UniformRank)
            foreach (var (module, rank, a, b) in factors)
            {
                using (a) using (b)
                {
                    // Zero rows of A and zero columns of B leave B·A unchanged.
                    writer.Add(PeftKeys.LoraAKey(module), nn.functional.pad(a!, new long[] { 0, 0, 0, maxRank - rank }));
                    writer.Add(PeftKeys.LoraBKey(module), nn.functional.pad(b!, new long[] { 0, maxRank - rank, 0, 0 }));
                }
            }

        if (compressed.Count == 0 && exactTensors.Count == 0)
            warnings.Add("The checkpoints hold no difference to store: every delta is zero. No adapter was written.");
        else
        {
            var config = BuildConfig(o, compressed, maxRank, exactTensors, layout);
            var info = PeftAdapterFiles.Write(output, o.Overwrite, temp => PeftAdapterFiles.WriteInto(temp, config, writer));
            adapterBytes = new FileInfo(Path.Combine(info.FullName, PeftAdapterFiles.WeightsFile)).Length;
        }

        var worst = compressed.OrderByDescending(r => r.RelativeError).FirstOrDefault();
        return new SvdDeltaSummary
        {
            Matrices = compressed.Count, ZeroDeltas = reports.Count(r => r.Status == DeltaStatus.ZeroDelta),
            NonMatrixChanged = reports.Count(r => r.Status == DeltaStatus.NonMatrix && r.MaxAbsDelta > 0),
            Missing = reports.Count(r => r.Status == DeltaStatus.Missing),
            BytesBefore = reports.Where(r => r.Status is DeltaStatus.Compressed or DeltaStatus.ZeroDelta).Sum(r => r.BytesBefore),
            BytesAfter = reports.Sum(r => r.BytesAfter),
            WorstRelativeError = worst?.RelativeError ?? 0, WorstMatrix = worst?.Name, MaxRank = maxRank,
            OutputPath = adapterBytes > 0 ? output : null, AdapterFileBytes = adapterBytes, Seconds = clock.Elapsed.TotalSeconds,
            Warnings = warnings,
        };
    }

    static string Preview(List<string> names) => names.Count == 0 ? "none" : string.Join(", ", names.Take(5)) + (names.Count > 5 ? ", …" : "");

    static readonly Regex EmbeddingOrHead = new(@"(^|\.)(embed_tokens|embed|wte|wpe|tok_embeddings|lm_head|output)(\.|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    /// <summary>
    /// Which matrices to compress: by default (or all-linear) every 2-D tensor except embeddings and
    /// output heads; else the module paths that Add-LoraAdapter's rules (<see cref="TargetMatcher"/>) select.
    /// </summary>
    static Func<string, bool> TargetPredicate(IReadOnlyList<string>? targets, DeltaLayout layout)
    {
        bool IsLinear(string name) => !EmbeddingOrHead.IsMatch(name);
        if (targets is null || targets.Count == 0) return IsLinear;
        var (names, regex) = TargetMatcher.FromUserValues(targets);
        var config = new LoraConfig { TargetModules = names, TargetRegex = regex };
        return n => TargetMatcher.Matches(config, layout.ModulePath(n), IsLinear(n));
    }

    /// <summary>NaN or Inf would reach LAPACK, which fails with native frames; name the tensor and checkpoint instead.</summary>
    static void RefuseNonFinite(Tensor t, string name, string checkpoint)
    {
        using var scope = NewDisposeScope();
        if (!t.isfinite().all().item<bool>())
            throw LoraShellException.InvalidData("NonFiniteWeights", $"Tensor '{name}' in '{checkpoint}' holds NaN or Inf values; its delta cannot be factorised.", name);
    }

    static SvdDeltaReport CompressOne(SafetensorsCheckpoint baseCk, SafetensorsCheckpoint ftCk, string name, DeltaLayout layout, SvdDeltaOptions o,
        SafetensorsStreamWriter writer, List<(string, int, Tensor?, Tensor?)>? deferred)
    {
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        // ΔW in float32, built in place so only two matrix copies exist at once.
        var delta = ftCk.Read(name).to(ScalarType.Float32);
        RefuseNonFinite(delta, name, ftCk.Source);
        using (var w0 = baseCk.Read(name))
        {
            RefuseNonFinite(w0, name, baseCk.Source);
            delta.sub_(w0);
        }
        var stored = delta.shape;
        // Conv1D stores [in, out]; PEFT's factors are A [r, in] and B [out, r] all the same (fan_in_fan_out).
        if (layout.FanInFanOut(name)) delta = delta.t().contiguous();
        long m = delta.shape[0], n = delta.shape[1];
        var (froSquared, maxAbs) = BlockStatistics(delta);
        long before = m * n * 4;
        if (froSquared == 0)
            return new SvdDeltaReport { Name = name, Status = DeltaStatus.ZeroDelta, Shape = stored, BytesBefore = before, Method = o.Method.ToString(), Seconds = clock.Elapsed.TotalSeconds };

        int sketch = o.Policy.Rank ?? o.Policy.MaxRank ?? o.DefaultSketchRank;
        using var svd = o.Method == SvdMethod.Exact
            ? TruncatedSvd.Exact(delta, (int)Math.Min(m, n), o.Float64 ? ScalarType.Float64 : ScalarType.Float32)
            : TruncatedSvd.Randomized(delta, (int)Math.Min(sketch, Math.Min(m, n)), o.Oversample, o.PowerIterations, o.Seed);
        var sigma = svd.S.to(ScalarType.Float64).data<double>().ToArray();
        var full = svd.FullSpectrum?.data<double>().ToArray();
        int rank = Math.Max(1, o.Policy.Choose(full ?? sigma, froSquared, Math.Min(m, n)));
        rank = Math.Min(rank, sigma.Length);

        var a = svd.Vh.narrow(0, 0, rank).contiguous();                               // [r, n]
        var b = (svd.U.narrow(1, 0, rank) * svd.S.narrow(0, 0, rank).unsqueeze(0)).contiguous(); // [m, r]
        double residualSquared = 0;
        for (long row = 0; row < m; row += ResidualRows)
        {
            using var blockScope = NewDisposeScope();
            long rows = Math.Min(ResidualRows, m - row);
            var block = delta.narrow(0, row, rows) - b.narrow(0, row, rows).matmul(a);
            residualSquared += block.to(ScalarType.Float64).pow(2).sum().item<double>();
        }
        double kept = sigma.Take(rank).Sum(s => s * s);
        double? optimal = full is null ? null : Math.Sqrt(full.Skip(rank).Sum(s => s * s) / froSquared);

        string module = layout.ModulePath(name);
        if (deferred is null)
        {
            writer.Add(PeftKeys.LoraAKey(module), a);
            writer.Add(PeftKeys.LoraBKey(module), b);
        }
        else deferred.Add((module, rank, a.clone().DetachFromDisposeScope(), b.clone().DetachFromDisposeScope()));

        return new SvdDeltaReport
        {
            Name = name, Status = DeltaStatus.Compressed, Shape = stored, Rank = rank,
            RelativeError = Math.Sqrt(residualSquared / froSquared), OptimalError = optimal,
            EnergyKept = Math.Min(1, kept / froSquared), DeltaNorm = Math.Sqrt(froSquared), MaxAbsDelta = maxAbs,
            BytesBefore = before, BytesAfter = (long)rank * (m + n) * 4, Seconds = clock.Elapsed.TotalSeconds,
            Method = o.Method.ToString(), Spectrum = (full ?? sigma).Take(SpectrumKept).ToArray(),
        };
    }

    const long StatisticsBlock = 1 << 22; // elements per block of a delta's statistics

    /// <summary>
    /// Σx² and max |x| of a delta in float64, a block of elements at a time: no float64 temporary the size
    /// of the tensor (an embedding's would be twice its float32 size, and the peak of the whole run).
    /// </summary>
    static (double Squares, double MaxAbs) BlockStatistics(Tensor delta)
    {
        using var flat = delta.reshape(-1);
        double squares = 0, maxAbs = 0;
        for (long start = 0; start < flat.shape[0]; start += StatisticsBlock)
        {
            using var blockScope = NewDisposeScope();
            var wide = flat.narrow(0, start, Math.Min(StatisticsBlock, flat.shape[0] - start)).to(ScalarType.Float64);
            squares += wide.pow(2).sum().item<double>();
            maxAbs = Math.Max(maxAbs, wide.abs().max().item<double>());
        }
        return (squares, maxAbs);
    }

    static SvdDeltaReport NonMatrix(SafetensorsCheckpoint baseCk, SafetensorsCheckpoint ftCk, string name, DeltaLayout layout, SvdDeltaOptions o,
        SafetensorsStreamWriter writer, List<string> exact)
    {
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var ft = ftCk.Read(name);
        var w0 = baseCk.Read(name);
        if (ft.is_floating_point()) { RefuseNonFinite(ft, name, ftCk.Source); RefuseNonFinite(w0, name, baseCk.Source); }
        // In place and a block at a time: an embedding of a 150k vocabulary is the largest tensor of a
        // checkpoint, and full-size float64 temporaries of it peaked at 18x its size (1.5B model, measured).
        var delta = ft.dtype == ScalarType.Float32 ? ft.clone() : ft.to(ScalarType.Float32); // ft itself may be stored below
        delta.sub_(w0);
        var (squares, maxAbs) = BlockStatistics(delta);
        double norm = Math.Sqrt(squares);
        bool store = o.IncludeNonMatrix && maxAbs > 0;
        if (store)
        {
            writer.Add(PeftKeys.ParameterKey(layout.Canonical(name)), ft);
            exact.Add(name);
            if (layout.TiedHeadOf(name) is string head && !ftCk.Contains(head)) // a head stored anyway is a tensor of its own
            {
                writer.Add(PeftKeys.ParameterKey(head), ft);
                exact.Add(head);
            }
        }
        return new SvdDeltaReport
        {
            Name = name, Status = DeltaStatus.NonMatrix, Shape = ft.shape, DeltaNorm = norm, MaxAbsDelta = maxAbs,
            BytesBefore = ft.numel() * 4, BytesAfter = store ? ft.numel() * SafetensorsDType.SizeOf(ft.dtype) * (layout.TiedHeadOf(name) is string h && !ftCk.Contains(h) ? 2 : 1) : 0,
            StoredExactly = store, Seconds = clock.Elapsed.TotalSeconds, Method = o.Method.ToString(),
        };
    }

    static LoraConfig BuildConfig(SvdDeltaOptions o, List<SvdDeltaReport> compressed, int maxRank, List<string> exactTensors, DeltaLayout layout)
    {
        var modules = compressed.Select(r => layout.ModulePath(r.Name)).ToList();
        var rankPattern = new Dictionary<string, int>();
        var alphaPattern = new Dictionary<string, double>();
        if (!o.UniformRank)
            foreach (var r in compressed.Where(r => r.Rank != maxRank))
            {
                // Escaped: PEFT reads pattern keys as regular expressions.
                string key = Regex.Escape(layout.ModulePath(r.Name));
                rankPattern[key] = r.Rank;
                alphaPattern[key] = r.Rank; // alpha_i = r_i: every scaling is exactly 1
            }
        var saved = exactTensors.Select(layout.ParameterModule).Distinct().ToList();
        return new LoraConfig
        {
            R = Math.Max(1, maxRank), LoraAlpha = Math.Max(1, maxRank), LoraDropout = 0,
            TargetModules = modules.Count > 0 ? modules : new List<string> { "__no_matrix_delta__" },
            RankPattern = rankPattern, AlphaPattern = alphaPattern,
            ModulesToSave = saved.Count > 0 ? saved : null,
            BaseModelNameOrPath = o.BaseModelNameOrPath ?? Path.GetFullPath(o.BasePath),
            Init = LoraInit.Default,
            FanInFanOut = compressed.Count > 0 && compressed.All(r => layout.FanInFanOut(r.Name)),
        };
    }
}
