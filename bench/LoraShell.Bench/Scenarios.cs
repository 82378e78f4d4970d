using System.Diagnostics;
using LoraShell.Core.Inference;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>Each scenario measures one thing in this process and returns its numbers.</summary>
static partial class Scenarios
{
    public static readonly IReadOnlyDictionary<string, Func<bool, BenchResult>> All = new Dictionary<string, Func<bool, BenchResult>>(Named().Concat(SpeedScenarios()).Concat(T5Scenarios()));

    static Dictionary<string, Func<bool, BenchResult>> Named() => new()
    {
        ["gemm"] = Gemm,
        ["forward-stories260K"] = quick => Forward("stories260K", quick ? 1 : 8, quick ? 32 : 256, quick),
        ["forward-synthetic50M"] = quick => Forward(quick ? "stories260K" : "synthetic50M", quick ? 1 : 4, quick ? 32 : 256, quick),
        ["forward-families"] = FamilyForward,
        ["tokenize-qwen3-tinyshakespeare"] = TokenizeQwen3,
        ["generate-stories260K"] = quick => Generate("stories260K", quick ? 16 : 256, quick),
        ["generate-synthetic50M"] = quick => Generate(quick ? "stories260K" : "synthetic50M", quick ? 16 : 128, quick),
        ["lora-forward-synthetic50M"] = quick => LoraForward(quick ? "stories260K" : "synthetic50M", quick ? 1 : 4, quick ? 32 : 256, quick),
        ["train-stories260K-lora-qv"] = quick => Train("lora-qv", quick),
        ["train-stories260K-lora-all"] = quick => Train("lora-all", quick),
        ["train-stories260K-full"] = quick => Train("full", quick),
        ["train-stories260K-ladder-magnitude"] = quick => Train("ladder-magnitude", quick),
        ["train-stories260K-ladder-random"] = quick => Train("ladder-random", quick),
        ["train-sst2-full"] = quick => Classify("full", quick),
        ["train-sst2-lora-all"] = quick => Classify("lora-all", quick),
        ["train-sst2-ladder-magnitude"] = quick => Classify("ladder-magnitude", quick),
        ["train-sst2-ladder-random"] = quick => Classify("ladder-random", quick),
        ["train-memory-synthetic50M-full"] = quick => TrainMemory("full", 4, quick),
        ["train-memory-synthetic50M-lora"] = quick => TrainMemory("lora", 4, quick),
        ["train-memory-synthetic50M-ladder"] = quick => TrainMemory("ladder", 4, quick),
        ["train-memory-synthetic50M-full-b16"] = quick => TrainMemory("full", 16, quick),
        ["train-memory-synthetic50M-lora-b16"] = quick => TrainMemory("lora", 16, quick),
        ["train-memory-synthetic50M-ladder-b16"] = quick => TrainMemory("ladder", 16, quick),
        ["train-memory-synthetic50M-full-b16-ckpt"] = quick => TrainMemory("full", 16, quick, checkpointing: true),
        ["train-memory-synthetic50M-lora-b16-ckpt"] = quick => TrainMemory("lora", 16, quick, checkpointing: true),
        ["train-tinyllama1b-lora-fp32"] = quick => TrainBigLora("fp32", false, quick),
        ["train-tinyllama1b-lora-fp32-ckpt"] = quick => TrainBigLora("fp32", true, quick),
        ["train-tinyllama1b-lora-bf16"] = quick => TrainBigLora("bf16", false, quick),
        ["train-tinyllama1b-lora-bf16-ckpt"] = quick => TrainBigLora("bf16", true, quick),
        ["train-tinyllama1b-lora-int8"] = quick => TrainBigLora("int8", false, quick),
        ["train-tinyllama1b-lora-int8-ckpt"] = quick => TrainBigLora("int8", true, quick),
        ["train-tinyllama1b-lora-nf4"] = quick => TrainBigLora("nf4", false, quick),
        ["train-tinyllama1b-lora-nf4-ckpt"] = quick => TrainBigLora("nf4", true, quick),
        ["lora-step-vs-pytorch-stories260K"] = quick => PeerStep("stories260K", quick),
        ["lora-step-vs-pytorch-synthetic50M"] = quick => PeerStep(quick ? "stories260K" : "synthetic50M", quick),
        ["lora-step-vs-pytorch-synthetic50M-all-b16"] = quick => PeerStep(quick ? "stories260K" : "synthetic50M", quick, batch: 16, allLinear: true),
        ["lora-step-vs-pytorch-tinyllama1b-all"] = quick => PeerStep("tinyllama1b", quick, batch: 1, allLinear: true),
        ["svd-sweep-stories260K"] = SvdSweep,
        ["svd-exact-vs-randomized"] = SvdSpeed,
        ["svd-stream-1GB"] = SvdStream,
        ["svd-delta-qwen2-1.5b-sharded-bf16"] = SvdDeltaSharded,
        ["gguf-export-tinyllama1b-f16"] = quick => GgufExport("F16", quick),
        ["gguf-export-tinyllama1b-q8_0"] = quick => GgufExport("Q8_0", quick),
        ["gguf-import-tinyllama1b-f16"] = quick => GgufImport("F16", quick),
        ["gguf-import-tinyllama1b-q8_0"] = quick => GgufImport("Q8_0", quick),
        ["gguf-generate-tinyllama1b-vs-llamacpp"] = GgufGenerate,
        ["train-packing-synthetic50M-mixed-lengths"] = Packing,
        ["gemm-head-chunks-synthetic50M"] = HeadChunks,
        ["lora-backward-layouts"] = LoraBackwardLayouts,
        ["gemm-floor-synthetic50M-lora-b4"] = quick => GemmFloor(4, quick),
        ["gemm-floor-synthetic50M-lora-b16"] = quick => GemmFloor(16, quick),
    };

    /// <summary>
    /// Peak training memory and step time of one method on the synthetic ~50M model (batch x 256,
    /// 6 steps): Full, LoRA r 8 all-linear, Ladder k 8. Peak RSS is measured from the start of training
    /// (the kernel's counter is reset), so it includes the weights; "training_mib" is the growth over them,
    /// and "model_mib" the peak less what the process held before the model existed (runtime, libtorch,
    /// JIT): weights + training state + activations, the quantity a GPU's allocator would report.
    /// </summary>
    static BenchResult TrainMemory(string method, int batch, bool quick, bool checkpointing = false)
    {
        string shared = BenchModels.SharedRoot();
        LoraShell.Core.IO.NativeMemory.MapLargeAllocations();
        using (var warm = ones(64, 64)) warm.matmul(warm).Dispose(); // libtorch loaded and its thread pool up
        LoraShell.Core.IO.NativeMemory.Trim();
        double runtimeMiB = LoraShell.Core.Training.MemoryMeter.CurrentMiB;
        var model = BenchModels.Load(quick ? "stories260K" : "synthetic50M");
        var tokenizer = LoraShell.Core.Tokenizers.Llama2cTokenizer.Load(Path.Combine(shared, "models", "stories260K", "tok512.bin"));
        var loaded = new LoadedModel(model, tokenizer, "synthetic50M", "bench");
        if (method == "lora")
            loaded.Adapters.Add("default", new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = "all-linear" }, seed: 1);
        var options = new LoraShell.Core.Training.TrainingOptions
        {
            Method = method switch { "full" => LoraShell.Core.Training.TrainingMethod.Full, "lora" => LoraShell.Core.Training.TrainingMethod.Lora, _ => LoraShell.Core.Training.TrainingMethod.Ladder },
            DataPaths = new[] { Path.Combine(shared, "data", "tinyshakespeare", "input.txt") }, MaxSteps = quick ? 2 : 6,
            BatchSize = quick ? 2 : batch, SequenceLength = quick ? 32 : 256, LearningRate = 1e-4, MaxEvalWindows = 1, Seed = 1,
            TrimMemoryEachStep = true, // peak RSS of live memory, not the allocator's high-water mark
            GradientCheckpointing = checkpointing,
            Ladder = new LoraShell.Core.SideTuning.LadderConfig { ReductionFactor = 8 },
        };
        var t = LoraShell.Core.Training.Trainer.Run(loaded, options);
        var r = new BenchResult { Scenario = $"train-memory-synthetic50M-{method}{(batch == 4 ? "" : $"-b{batch}")}{(checkpointing ? "-ckpt" : "")}" };
        r.Metrics["peak_mib"] = t.PeakMemoryMiB;
        r.Metrics["runtime_mib"] = runtimeMiB;
        r.Metrics["model_mib"] = t.PeakMemoryMiB - runtimeMiB;
        r.Metrics["training_mib"] = t.PeakMemoryMiB - t.StartMemoryMiB;
        // What the process holds after training, split: anonymous memory (tensors, runtime) and file-backed
        // pages (mapped libraries), since peak RSS counts both.
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("RssAnon:") || line.StartsWith("RssFile:"))
                r.Metrics[line.StartsWith("RssAnon:") ? "end_anon_mib" : "end_file_mib"] = double.Parse(line.Split(':')[1].Trim().Split(' ')[0]) / 1024;
        r.Metrics["ms_per_step"] = t.MillisecondsPerStep;
        r.Metrics["trainable_params"] = t.TrainableParameters;
        r.Settings["run"] = $"{t.Steps} steps, batch {options.BatchSize} x seq {options.SequenceLength}, {(quick ? "stories260K" : "synthetic50M")}{(checkpointing ? ", gradient checkpointing" : "")}";
        return r;
    }

    /// <summary>
    /// The same LoRA training step (r 8, alpha 16, q_proj + v_proj, AdamW lr 1e-3, mean cross-entropy)
    /// in LoraShell and in eager PyTorch (bench/peer/lora_step.py, Debian's python3-torch with OpenBLAS),
    /// from identical weights and batch, run alternately in rounds. Reports the time ratio ours/peer
    /// and the loss differences (first step and last step).
    /// </summary>
    static BenchResult PeerStep(string modelName, bool quick, int? batch = null, bool allLinear = false)
    {
        bool big = modelName == "tinyllama1b";
        string scenario = $"lora-step-vs-pytorch-{modelName}{(allLinear ? big ? "-all" : $"-all-b{batch}" : "")}";
        // The batch-16 and 1.1B steps take seconds on each side: fewer steps and rounds keep the scenario to minutes.
        int seq = quick ? 32 : big ? 512 : 256, steps = quick ? 2 : big ? 3 : batch > 4 ? 4 : 6, rounds = quick ? 1 : big ? 1 : batch > 4 ? 2 : 3;
        batch = quick ? 2 : batch ?? (modelName == "synthetic50M" ? 4 : 8);
        // The 1.1B shape: the bench's bfloat16 folder read as float32 (both sides then hold 4.2 GiB of weights).
        using var model = big ? LoadedModel.Load(TinyLlamaLoad("fp32", quick)).Model : BenchModels.Load(modelName);
        var loaded = new LoadedModel(model, null, modelName, "bench");
        var config = allLinear
            ? new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = "all-linear", Init = LoraShell.Core.Lora.LoraInit.Random }
            : new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" }, Init = LoraShell.Core.Lora.LoraInit.Random };
        loaded.Adapters.Add("default", config, seed: 1);
        loaded.Adapters.MarkTrainable("default");
        manual_seed(2);
        var ids = randint(3, model.Config.VocabSize, new long[] { batch.Value, seq });
        var targets = randint(3, model.Config.VocabSize, new long[] { batch.Value, seq });
        var lora = LoraShell.Core.Lora.PeftAdapterFormat.StateDict(loaded.Adapters, "default")
            .Select(p => KeyValuePair.Create(p.Key["base_model.model.".Length..], p.Value)).ToList();
        var initial = lora.Select(p => p.Value.detach().clone()).ToList();

        string dir = Path.Combine(Path.GetTempPath(), $"lorashell-peer-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        var r = new BenchResult { Scenario = scenario };
        try
        {
            var inputs = LoraShell.Core.Models.HuggingFaceWriter.HuggingFaceStateDict(model).Concat(lora)
                .Append(KeyValuePair.Create("input_ids", ids)).Append(KeyValuePair.Create("targets", targets)).ToList();
            LoraShell.Core.IO.SafetensorsWriter.Write(Path.Combine(dir, "inputs.safetensors"), inputs);
            var c = model.Config;
            File.WriteAllText(Path.Combine(dir, "config.json"), System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["head_dim"] = c.HeadDim, ["heads"] = c.NumAttentionHeads, ["kv_heads"] = c.NumKeyValueHeads, ["layers"] = c.NumHiddenLayers,
                ["rope_theta"] = c.RopeTheta, ["eps"] = c.RmsNormEps, ["seq"] = seq, ["scaling"] = 2.0, ["lr"] = 1e-3,
            }));
            string peer = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "peer", "lora_step.py");
            bool peerAvailable = File.Exists("/usr/bin/python3") && RunProcess("/usr/bin/python3", "-c \"import torch\"", out _) == 0;
            var ours = new List<double>(); var theirs = new List<double>();
            List<double>? ourLosses = null, peerLosses = null;
            for (int round = 0; round < rounds; round++)
            {
                using (no_grad()) foreach (var (p, init) in lora.Select(p => p.Value).Zip(initial)) p.copy_(init);
                var (ms, losses) = OurSteps(loaded, ids, targets, steps);
                ours.Add(ms); ourLosses ??= losses;
                if (!peerAvailable) continue;
                if (RunProcess("/usr/bin/python3", $"\"{Path.GetFullPath(peer)}\" \"{Path.Combine(dir, "inputs.safetensors")}\" \"{Path.Combine(dir, "config.json")}\" --steps {steps} --threads {get_num_threads()}", out string output) != 0)
                    throw new InvalidOperationException("peer failed: " + output);
                using var doc = System.Text.Json.JsonDocument.Parse(output.Trim().Split('\n')[^1]);
                theirs.Add(doc.RootElement.GetProperty("ms_per_step").GetDouble());
                peerLosses ??= doc.RootElement.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToList();
            }
            double Median(List<double> v) { var o = v.OrderBy(x => x).ToList(); return o[o.Count / 2]; }
            r.Metrics["ours_ms_per_step"] = Median(ours);
            if (peerAvailable)
            {
                r.Metrics["pytorch_ms_per_step"] = Median(theirs);
                r.Metrics["ours_over_pytorch"] = Median(ours) / Median(theirs);
                r.Metrics["first_loss_abs_diff"] = Math.Abs(ourLosses![0] - peerLosses![0]);
                r.Metrics["last_loss_abs_diff"] = Math.Abs(ourLosses[^1] - peerLosses[^1]);
            }
            r.Settings["run"] = $"{modelName}, LoRA r8 {(allLinear ? "all-linear" : "q_proj + v_proj")}, batch {batch} x seq {seq}, {steps} steps x {rounds} alternating rounds{(peerAvailable ? "" : "; PyTorch peer not installed (apt-get install python3-torch libopenblas0-pthread)")}";
            return r;
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static (double Ms, List<double> Losses) OurSteps(LoadedModel loaded, Tensor ids, Tensor targets, int steps)
    {
        var trainable = loaded.Model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();
        using var optimizer = new LoraShell.Core.Training.AdamW(trainable, 0.9, 0.999, 1e-8, 0);
        var times = new List<double>(); var losses = new List<double>();
        loaded.Model.train();
        for (int i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var logits = loaded.Model.forward(ids);
                var loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1));
                loss.backward();
                optimizer.Step(1e-3);
                optimizer.ZeroGrad();
                losses.Add(loss.item<float>());
            }
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        loaded.Model.eval();
        var rest = times.Skip(steps > 1 ? 1 : 0).OrderBy(x => x).ToList();
        return (rest[rest.Count / 2], losses);
    }

    static int RunProcess(string file, string arguments, out string output)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) output += stderr.Result;
        return p.ExitCode;
    }

    /// <summary>
    /// The SVD-delta experiment on real data: full fine-tuning with the training protocol (300 steps,
    /// batch 16 x 256), then merged rank-r deltas (norms and embeddings stored exactly) for r = 1..32,
    /// each scored on the whole validation set.
    /// </summary>
    static BenchResult SvdSweep(bool quick)
    {
        var setup = new LoraShell.Core.Experiments.ExperimentSetup
        {
            SharedFolder = BenchModels.SharedRoot(), Steps = quick ? 3 : 300, BatchSize = quick ? 2 : 16, SequenceLength = quick ? 32 : 256,
            MaxEvalWindows = quick ? 4 : 0, FullLearningRate = 1e-3,
        };
        string dir = Path.Combine(Path.GetTempPath(), $"lorashell-svd-sweep-{Environment.ProcessId}");
        try
        {
            var ft = LoraShell.Core.Experiments.SvdExperiments.FineTune(setup, dir);
            var rows = LoraShell.Core.Experiments.SvdExperiments.MergedLossByRank(setup, ft, dir, new[] { 1, 2, 4, 8, 16, 32 });
            var r = new BenchResult { Scenario = "svd-sweep-stories260K" };
            r.Metrics["base_val_loss"] = ft.BaseValidationLoss;
            r.Metrics["full_ft_val_loss"] = ft.FineTunedValidationLoss;
            foreach (var row in rows)
            {
                r.Metrics[$"r{row.Rank}_val_loss"] = row.ValidationLoss;
                r.Metrics[$"r{row.Rank}_adapter_kib"] = row.AdapterBytes / 1024.0;
                r.Metrics[$"r{row.Rank}_mean_rel_error"] = row.MeanRelativeError;
            }
            r.Metrics["smallest_rank_within_0.05"] = LoraShell.Core.Experiments.SvdExperiments.SmallestRankWithin(rows, ft.FineTunedValidationLoss) ?? -1; // -1: none
            r.Settings["run"] = $"full FT {setup.Steps} steps, batch {setup.BatchSize} x seq {setup.SequenceLength}, lr {setup.FullLearningRate}; exact SVD, norms/embeddings exact";
            return r;
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
    }

    /// <summary>σ_i = (i+1)^-1/2 (slow decay, the hard case for sketching) with random singular vectors.</summary>
    static Tensor Planted(long n, long seed)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)seed, CPU);
        var (u, _) = linalg.qr(randn(new long[] { n, n }, generator: g));
        var (v, _) = linalg.qr(randn(new long[] { n, n }, generator: g));
        var s = pow(arange(1, n + 1, dtype: ScalarType.Float32), -0.5);
        return (u * s.unsqueeze(0)).matmul(v.t()).MoveToOuterDisposeScope();
    }

    /// <summary>Exact vs randomized truncated SVD: time and error against the Eckart–Young optimum.</summary>
    static BenchResult SvdSpeed(bool quick)
    {
        var r = new BenchResult { Scenario = "svd-exact-vs-randomized" };
        foreach (long n in quick ? new long[] { 256 } : new long[] { 1024, 2048, 4096 })
        {
            using var m = Planted(n, n);
            var clock = Stopwatch.StartNew();
            using var exact = LoraShell.Core.Delta.TruncatedSvd.Exact(m, (int)n);
            double exactSeconds = clock.Elapsed.TotalSeconds;
            var sigma = exact.FullSpectrum!.data<double>().ToArray();
            double total = sigma.Sum(x => x * x);
            foreach (int rank in new[] { 16, 64 })
            {
                double optimal = Math.Sqrt(sigma.Skip(rank).Sum(x => x * x) / total);
                clock.Restart();
                using var approx = LoraShell.Core.Delta.TruncatedSvd.Randomized(m, rank, seed: 1);
                double randSeconds = clock.Elapsed.TotalSeconds;
                using var scope = NewDisposeScope();
                double error = (m - (approx.U * approx.S.unsqueeze(0)).matmul(approx.Vh)).norm().item<float>() / m.norm().item<float>();
                r.Metrics[$"n{n}_r{rank}_exact_s"] = exactSeconds;
                r.Metrics[$"n{n}_r{rank}_randomized_s"] = randSeconds;
                r.Metrics[$"n{n}_r{rank}_speedup"] = exactSeconds / randSeconds;
                r.Metrics[$"n{n}_r{rank}_error_over_optimal"] = error / optimal;
            }
        }
        r.Settings["spectrum"] = "planted sigma_i = (i+1)^-0.5, random orthonormal U, V; randomized: oversample 10, 2 power iterations";
        return r;
    }

    /// <summary>
    /// Invoke-SvdDelta's streaming: a synthetic ~1 GB float32 checkpoint pair (16 matrices of 4096²)
    /// compressed at r 64 (randomized); peak RSS against the largest tensor and the runtime baseline.
    /// </summary>
    static BenchResult SvdStream(bool quick)
    {
        int count = quick ? 4 : 16;
        long n = quick ? 512 : 4096;
        string dir = Path.Combine(Path.GetTempPath(), $"lorashell-svd-stream-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var (file, seed) in new[] { ("base.safetensors", 1L), ("ft.safetensors", 2L) })
            {
                using var w = new LoraShell.Core.IO.SafetensorsStreamWriter(dir);
                for (int i = 0; i < count; i++)
                {
                    using var scope = NewDisposeScope();
                    manual_seed(i);
                    var t = randn(n, n);
                    if (seed == 2) { manual_seed(1000 + i); t = t + 0.01f * randn(n, 64).matmul(randn(64, n)); }
                    w.Add($"model.layers.{i}.mlp.proj.weight", t);
                }
                w.Finish(Path.Combine(dir, file));
            }
            GC.Collect();
            double baseline = LoraShell.Core.Training.MemoryMeter.CurrentMiB;
            LoraShell.Core.Training.MemoryMeter.ResetPeak();
            var clock = Stopwatch.StartNew();
            var summary = LoraShell.Core.Delta.SvdDeltaCompressor.Run(new LoraShell.Core.Delta.SvdDeltaOptions
            {
                BasePath = Path.Combine(dir, "base.safetensors"), FineTunedPath = Path.Combine(dir, "ft.safetensors"), OutputPath = Path.Combine(dir, "delta"),
                Policy = new LoraShell.Core.Delta.RankPolicy { Rank = 64 }, Method = LoraShell.Core.Delta.SvdMethod.Randomized, Seed = 1,
            }, _ => { });
            double peak = LoraShell.Core.Training.MemoryMeter.PeakMiB;
            double largest = n * n * 4 / 1048576.0;
            var r = new BenchResult { Scenario = "svd-stream-1GB" };
            r.Metrics["checkpoint_mib"] = count * largest;
            r.Metrics["largest_tensor_mib"] = largest;
            r.Metrics["baseline_rss_mib"] = baseline;
            r.Metrics["peak_rss_mib"] = peak;
            r.Metrics["peak_over_baseline_in_largest_tensors"] = (peak - baseline) / largest;
            r.Metrics["seconds"] = clock.Elapsed.TotalSeconds;
            r.Settings["run"] = $"{count} float32 matrices of {n}x{n} per checkpoint, randomized r 64, worst error {summary.WorstRelativeError:F4}";
            return r;
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>
    /// The training protocol of DESIGN.md §5 on stories260K and Tiny Shakespeare (last 10% held out):
    /// 300 steps, batch 16, sequence 256, seed 1337, warmup 30, cosine to 10%; whole validation set
    /// before and after. LoRA is r 8, alpha 16 (lr 3e-3); Ladder is k 4 (width 16), magnitude-pruned
    /// or random init (lr 3e-3); full fine-tuning uses lr 1e-3.
    /// </summary>
    /// <summary>stories260K ready for a variant: full, lora-qv / lora-all (r 8, alpha 16) or ladder-*.</summary>
    static (LoadedModel, LoraShell.Core.Training.TrainingMethod) StoriesFor(string variant)
    {
        var loaded = LoadedModel.Load(new ModelLoadOptions { Path = Path.Combine(BenchModels.SharedRoot(), "models", "stories260K", "stories260K.bin") });
        var method = variant == "full" ? LoraShell.Core.Training.TrainingMethod.Full
            : variant.StartsWith("ladder") ? LoraShell.Core.Training.TrainingMethod.Ladder : LoraShell.Core.Training.TrainingMethod.Lora;
        if (variant.StartsWith("lora"))
            loaded.Adapters.Add("default", new LoraShell.Core.Lora.LoraConfig
            {
                R = 8, LoraAlpha = 16,
                TargetModules = variant == "lora-qv" ? new[] { "q_proj", "v_proj" } : null,
                TargetRegex = variant == "lora-all" ? "all-linear" : null,
            }, seed: 1337);
        return (loaded, method);
    }

    /// <summary>The side network of the ladder-* variants: k 4, magnitude-pruned or random init.</summary>
    static LoraShell.Core.SideTuning.LadderConfig LadderFor(string variant) => new()
    {
        ReductionFactor = 4,
        Init = variant == "ladder-random" ? LoraShell.Core.SideTuning.LadderInit.Random : LoraShell.Core.SideTuning.LadderInit.Magnitude,
    };

    static BenchResult Train(string variant, bool quick)
    {
        var (loaded, method) = StoriesFor(variant);
        var options = new LoraShell.Core.Training.TrainingOptions
        {
            Method = method, DataPaths = new[] { Path.Combine(BenchModels.SharedRoot(), "data", "tinyshakespeare", "input.txt") },
            MaxSteps = quick ? 3 : 300, BatchSize = quick ? 2 : 16, SequenceLength = quick ? 32 : 256, WarmupSteps = quick ? 0 : 30,
            LearningRate = method == LoraShell.Core.Training.TrainingMethod.Full ? 1e-3 : 3e-3, Seed = 1337, MaxEvalWindows = quick ? 4 : 0,
            Ladder = LadderFor(variant),
        };
        var t = LoraShell.Core.Training.Trainer.Run(loaded, options);
        var r = new BenchResult { Scenario = $"train-stories260K-{variant}" };
        r.Metrics["val_loss_before"] = t.InitialValidationLoss ?? double.NaN;
        r.Metrics["val_loss_after"] = t.FinalValidationLoss ?? double.NaN;
        r.Metrics["trainable_params"] = t.TrainableParameters;
        r.Metrics["ms_per_step"] = t.MillisecondsPerStep;
        r.Metrics["tokens_per_s"] = t.TokensPerSecond;
        r.Metrics["peak_mib"] = t.PeakMemoryMiB;
        r.Settings["run"] = $"{t.Steps} steps, batch {options.BatchSize} x seq {options.SequenceLength}, lr {options.LearningRate:G}, seed {options.Seed}";
        return r;
    }

    /// <summary>
    /// SST-2 sentiment from stories260K: train on sst2/train.tsv for a fixed budget, accuracy on the first
    /// 1,000 sentences of sst2/validation.tsv; Full, LoRA (r 8 all-linear) and Ladder (k 4, both inits).
    /// </summary>
    static BenchResult Classify(string variant, bool quick)
    {
        string shared = BenchModels.SharedRoot();
        var (loaded, method) = StoriesFor(variant);
        var options = new LoraShell.Core.Training.TrainingOptions
        {
            Method = method, DataPaths = new[] { Path.Combine(shared, "data", "sst2", "train.tsv") }, ValidationPaths = new[] { Path.Combine(shared, "data", "sst2", "validation.tsv") },
            MaxSteps = quick ? 3 : 300, BatchSize = quick ? 4 : 32, SequenceLength = 64, WarmupSteps = quick ? 0 : 30,
            LearningRate = method == LoraShell.Core.Training.TrainingMethod.Full ? 1e-3 : 3e-3, Seed = 1337, MaxEvalWindows = quick ? 16 : 1000,
            Ladder = LadderFor(variant),
        };
        var t = LoraShell.Core.Training.Trainer.Run(loaded, options);
        var r = new BenchResult { Scenario = $"train-sst2-{variant}" };
        r.Metrics["accuracy_before"] = t.InitialValidationAccuracy ?? double.NaN;
        r.Metrics["accuracy_after"] = t.FinalValidationAccuracy ?? double.NaN;
        r.Metrics["val_loss_after"] = t.FinalValidationLoss ?? double.NaN;
        r.Metrics["trainable_params"] = t.TrainableParameters;
        r.Metrics["ms_per_step"] = t.MillisecondsPerStep;
        r.Settings["run"] = $"{t.Steps} steps, batch {options.BatchSize}, max {options.SequenceLength} tokens, lr {options.LearningRate:G}, seed {options.Seed}; accuracy on the first {options.MaxEvalWindows} validation sentences";
        return r;
    }

    /// <summary>
    /// Inference cost of adapters, measured alternately in one process: base forward; unmerged LoRA
    /// (all-linear) at r = 8 and r = 64; and the r = 8 adapter merged, which should cost what the base does.
    /// </summary>
    static BenchResult LoraForward(string modelName, int batch, int seq, bool quick)
    {
        using var model = BenchModels.Load(modelName);
        var loaded = new LoadedModel(model, null, modelName, "bench");
        var ids = randint(3, model.Config.VocabSize, new long[] { batch, seq });
        int rounds = quick ? 1 : 5;
        double Time()
        {
            using var _ = no_grad();
            using (var scope = NewDisposeScope()) model.forward(ids); // warm-up after every change
            var clock = Stopwatch.StartNew();
            using (var scope = NewDisposeScope()) model.forward(ids);
            return clock.Elapsed.TotalMilliseconds;
        }
        int big = quick ? 16 : 64; // stories260K's v_proj is 32 wide
        var samples = new Dictionary<string, List<double>> { ["base"] = new(), ["lora_r8"] = new(), ["lora_big"] = new(), ["merged_r8"] = new() };
        loaded.Adapters.Add("r8", new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = "all-linear", Init = LoraShell.Core.Lora.LoraInit.Random }, seed: 1);
        loaded.Adapters.Add("big", new LoraShell.Core.Lora.LoraConfig { R = big, LoraAlpha = 2 * big, TargetRegex = "all-linear", Init = LoraShell.Core.Lora.LoraInit.Random }, seed: 2);
        for (int i = 0; i < rounds; i++)
        {
            loaded.Adapters.Disable(); samples["base"].Add(Time()); loaded.Adapters.Enable();
            loaded.Adapters.SetActive("r8"); samples["lora_r8"].Add(Time());
            loaded.Adapters.SetActive("big"); samples["lora_big"].Add(Time());
            loaded.Adapters.SetActive("r8"); loaded.Adapters.Merge(null, safe: false); samples["merged_r8"].Add(Time()); loaded.Adapters.Unmerge();
        }
        double Median(List<double> v) { var s = v.OrderBy(x => x).ToList(); return s[s.Count / 2]; }
        var r = new BenchResult { Scenario = $"lora-forward-{modelName}" };
        double b = Median(samples["base"]);
        r.Metrics["base_ms"] = b;
        r.Metrics["merged_over_base"] = Median(samples["merged_r8"]) / b;
        r.Metrics["lora_r8_over_base"] = Median(samples["lora_r8"]) / b;
        r.Metrics[$"lora_r{big}_over_base"] = Median(samples["lora_big"]) / b;
        r.Settings["model"] = $"{modelName} ({model.Config.ParameterCount:N0} params)";
        r.Settings["batch x seq"] = $"{batch} x {seq}";
        r.Settings["adapters"] = "all-linear, unmerged unless 'merged'; ratios of medians over rounds";
        return r;
    }

    /// <summary>This machine's fp32 GEMM throughput through libtorch: the roofline for MFU.</summary>
    static BenchResult Gemm(bool quick)
    {
        int n = quick ? 256 : 2048;
        var a = randn(n, n); var b = randn(n, n);
        using (var _ = matmul(a, b)) { } // warm-up
        int iterations = quick ? 2 : 10;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) using (var _ = matmul(a, b)) { }
        double seconds = clock.Elapsed.TotalSeconds / iterations;
        var r = new BenchResult { Scenario = "gemm" };
        r.Metrics["gflops"] = 2.0 * n * n * n / seconds / 1e9;
        r.Metrics["ms_per_matmul"] = seconds * 1000;
        r.Settings["size"] = $"{n}x{n} fp32";
        return r;
    }

    static BenchResult Forward(string modelName, int batch, int seq, bool quick)
    {
        using var model = BenchModels.Load(modelName);
        var ids = randint(3, model.Config.VocabSize, new long[] { batch, seq });
        using var _ = no_grad();
        using (var warm = model.forward(ids)) { }
        int iterations = quick ? 2 : 5;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) using (var scope = NewDisposeScope()) model.forward(ids);
        double seconds = clock.Elapsed.TotalSeconds / iterations;
        var r = new BenchResult { Scenario = $"forward-{modelName}" };
        r.Metrics["tokens_per_s"] = batch * seq / seconds;
        r.Metrics["ms_per_forward"] = seconds * 1000;
        r.Settings["model"] = $"{modelName} ({model.Config.ParameterCount:N0} params)";
        r.Settings["batch x seq"] = $"{batch} x {seq}";
        return r;
    }

    /// <summary>
    /// Forward tokens/s of a same-size random model of every family (width 512, 6 layers, 8 heads, about
    /// 35M parameters with a 32k vocabulary), as a ratio to the Llama model: a family whose path is slow
    /// (a fused projection split badly, a mask built every layer) shows as a ratio well below 1.
    /// </summary>
    static BenchResult FamilyForward(bool quick)
    {
        int batch = quick ? 1 : 4, seq = quick ? 32 : 256, iterations = quick ? 1 : 4;
        var r = new BenchResult { Scenario = "forward-families" };
        double llama = 0;
        foreach (var family in new[] { "llama", "mistral", "qwen2", "qwen3", "phi3", "gpt2" })
        {
            using var model = BenchModels.Family(family, quick);
            var ids = randint(3, model.Config.VocabSize, new long[] { batch, seq });
            using var _ = no_grad();
            using (var warm = model.forward(ids)) { }
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) using (var scope = NewDisposeScope()) model.forward(ids);
            double tokensPerSecond = batch * seq * iterations / clock.Elapsed.TotalSeconds;
            if (family == "llama") llama = tokensPerSecond;
            r.Metrics[$"{family}_tokens_per_s"] = tokensPerSecond;
            r.Metrics[$"{family}_over_llama"] = tokensPerSecond / llama;
            r.Settings[family] = $"{model.Config.ParameterCount:N0} params";
        }
        r.Settings["batch x seq"] = $"{batch} x {seq}";
        return r;
    }

    static BenchResult Generate(string modelName, int tokens, bool quick)
    {
        using var model = BenchModels.Load(modelName);
        var options = new GenerationOptions { MaxTokens = tokens, Temperature = 0 };
        TextGenerator.GenerateTokens(model, new[] { 1 }, options with { MaxTokens = 4 }, Array.Empty<int>()); // warm-up
        var clock = Stopwatch.StartNew();
        var (generated, _) = TextGenerator.GenerateTokens(model, new[] { 1 }, options, Array.Empty<int>());
        double seconds = clock.Elapsed.TotalSeconds;
        var r = new BenchResult { Scenario = $"generate-{modelName}" };
        r.Metrics["tokens_per_s"] = generated.Count / seconds;
        r.Settings["model"] = $"{modelName} ({model.Config.ParameterCount:N0} params)";
        r.Settings["tokens"] = $"{generated.Count} greedy from BOS, KV cache, batch 1";
        return r;
    }

    /// <summary>
    /// Qwen3's tokenizer.json over the whole of Tiny Shakespeare (1.1 MB, one string): load, ids only, and
    /// ids with token strings and offsets. The peer numbers (Hugging Face's JS tokenizers and the Rust crate
    /// through N-API, same file and text, same machine) were measured by tests/fixtures/tokenizers/bench.mjs
    /// and are read from its bench-node.json; that script needs the generator's npm packages, which the
    /// test setup does not install.
    /// </summary>
    static BenchResult TokenizeQwen3(bool quick)
    {
        string shared = BenchModels.SharedRoot();
        string folder = Path.Combine(shared, "tokenizers", "qwen3");
        string text = File.ReadAllText(Path.Combine(shared, "data", "tinyshakespeare", "input.txt"));
        if (quick) text = text[..20000];
        var clock = Stopwatch.StartNew();
        var tokenizer = Core.Tokenizers.TokenizerLoader.Load(folder);
        double load = clock.Elapsed.TotalMilliseconds;
        tokenizer.Encode(text[..1000]); // first call compiles the hot paths
        clock.Restart();
        int count = tokenizer.Encode(text).Count;
        double ids = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        tokenizer.Tokenize(text, addSpecialTokens: false);
        double spans = clock.Elapsed.TotalMilliseconds;
        var r = new BenchResult { Scenario = "tokenize-qwen3-tinyshakespeare" };
        r.Metrics["load_ms"] = load;
        r.Metrics["encode_ids_ms"] = ids;
        r.Metrics["encode_with_offsets_ms"] = spans;
        r.Metrics["tokens"] = count;
        string peer = Path.Combine(AppContext.BaseDirectory, "bench-node.json");
        if (File.Exists(peer))
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(peer));
            var root = doc.RootElement;
            foreach (var (key, name) in new[] { ("js", "hf_js"), ("rust", "rust_napi") })
                if (root.TryGetProperty(key, out var lib))
                {
                    if (lib.TryGetProperty("encode", out var e)) r.Metrics[$"peer_{name}_encode_ms"] = e.GetProperty("median_ms").GetDouble();
                    if (lib.TryGetProperty("load", out var l)) r.Metrics[$"peer_{name}_load_ms"] = l.GetProperty("median_ms").GetDouble();
                }
            r.Settings["peers"] = "from tests/fixtures/tokenizers/bench-node.json (node " + root.GetProperty("machine").GetProperty("node").GetString() + ", medians of 5)";
        }
        r.Settings["text"] = $"{text.Length:N0} characters as one string{(quick ? " (quick: first 20,000)" : "")}";
        return r;
    }
}
