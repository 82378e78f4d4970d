using LoraShell.Core.Models;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>
/// Training step speed as the work grows (issue 27): the same trainer a user runs (`Start-LoraTraining`),
/// on the synthetic 50M model over Tiny Shakespeare, at batch 1, 4, 8 and 16 x 256, without the memory
/// scenarios' per-step trimming (which maps every large tensor afresh and so measures page faults too).
/// Reports ms per step and per token, and the share of the measured GEMM rate the step reaches against its
/// ideal matmul FLOPs: 4·N·T for a frozen base (forward + input gradients), 6·N·T for Full, one more
/// forward (2·N·T) with checkpointing; N counts the matmul weights, the tied head included.
/// </summary>
static partial class Scenarios
{
    static BenchResult TrainSpeed(string method, int batch, bool checkpointing, bool quick, int accumulate = 1)
    {
        string shared = BenchModels.SharedRoot();
        string modelName = quick ? "stories260K" : "synthetic50M";
        var model = BenchModels.Load(modelName);
        var tokenizer = LoraShell.Core.Tokenizers.Llama2cTokenizer.Load(Path.Combine(shared, "models", "stories260K", "tok512.bin"));
        var loaded = new LoadedModel(model, tokenizer, modelName, "bench");
        if (method == "lora")
            loaded.Adapters.Add("default", new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = "all-linear" }, seed: 1);
        int seq = quick ? 32 : 256;
        var options = new TrainingOptions
        {
            Method = method == "full" ? TrainingMethod.Full : TrainingMethod.Lora,
            DataPaths = new[] { Path.Combine(shared, "data", "tinyshakespeare", "input.txt") }, MaxSteps = quick ? 2 : 6,
            BatchSize = quick ? Math.Min(batch, 2) : batch / accumulate, GradientAccumulationSteps = accumulate, SequenceLength = seq, LearningRate = 1e-4, MaxEvalWindows = 1, Seed = 1,
            GradientCheckpointing = checkpointing,
        };
        return Measured(SpeedName(method, batch, checkpointing) + (accumulate > 1 ? $"-accum{accumulate}" : ""), loaded, options, method, quick,
            $"{modelName}, {(method == "full" ? "Full" : "LoRA r8 all-linear")}");
    }

    /// <summary>Trains, sampling the GEMM rate between steps, and reports the step against its ideal FLOPs.</summary>
    static BenchResult Measured(string scenario, LoadedModel loaded, TrainingOptions options, string method, bool quick, string what)
    {
        var model = loaded.Model;
        bool checkpointing = options.GradientCheckpointing;
        int seq = options.SequenceLength;
        var perf = PerfControl.AfterFirstStep(options.MaxSteps!.Value);
        double tokens = (double)options.BatchSize * options.GradientAccumulationSteps * seq;
        double matmulWeights = MatmulWeights(model.Config);
        double ideal = (method == "full" ? 6 : 4) * matmulWeights * tokens + (checkpointing ? 2 * matmulWeights * tokens : 0);
        // The GEMM rate is sampled after each step, outside its timing (unless perf is profiling the steps), and
        // each step is set against the sample that follows it: the host's speed drifts over seconds, so a step
        // and the GEMM run right after it see the same machine. A step's time is the interval from the end of
        // the previous sample to this report; the first (warm-up, data loading) and the last (it evaluates) are left out.
        var gemmSamples = new List<double>();
        var shares = new List<double>();
        var interval = System.Diagnostics.Stopwatch.StartNew();
        var progress = perf ?? new StepHook(p =>
        {
            double stepSeconds = interval.Elapsed.TotalSeconds;
            double rate = GemmRate(quick, warmups: 1, runs: 3);
            gemmSamples.Add(rate);
            if (p.Step > 1 && p.Step < p.TotalSteps) shares.Add(ideal / 1e9 / stepSeconds / rate);
            interval.Restart();
        });
        var t = Trainer.Run(loaded, options, progress);
        var r = new BenchResult { Scenario = scenario };
        r.Metrics["ms_per_step"] = t.MillisecondsPerStep;
        r.Metrics["us_per_token"] = t.MillisecondsPerStep * 1000 / tokens;
        r.Metrics["ideal_gflop"] = ideal / 1e9;
        r.Metrics["gflops"] = ideal / 1e9 / (t.MillisecondsPerStep / 1000);
        if (gemmSamples.Count == 0) gemmSamples.Add(GemmRate(quick));
        gemmSamples.Sort();
        double gemm = gemmSamples[gemmSamples.Count / 2];
        r.Metrics["gemm_gflops"] = gemm;
        r.Metrics["share_of_gemm"] = r.Metrics["gflops"] / gemm;
        if (shares.Count > 0)
        {
            shares.Sort();
            r.Metrics["share_of_gemm_paired"] = shares[shares.Count / 2]; // median over the steps, each against its own sample
        }
        // A quantized base dequantizes every projection in the forward, again in the backward and once more
        // in a checkpointed recompute: one pass timed here, on its own, gives that cost its own column.
        var quantized = model.modules().OfType<LoraShell.Core.Models.Blocks.QuantizedProjection>().Where(q => q.IsQuantized).ToList();
        if (quantized.Count > 0)
        {
            int passes = checkpointing ? 3 : 2;
            var passTimes = new List<double>();
            for (int i = 0; i < 3; i++)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                foreach (var q in quantized) q.Dequantized().Dispose();
                passTimes.Add(clock.Elapsed.TotalMilliseconds);
            }
            passTimes.Sort();
            double dequant = passTimes[1] * passes;
            r.Metrics["dequant_ms_per_step"] = dequant;
            r.Metrics["share_of_gemm_without_dequant"] = ideal / 1e9 / ((t.MillisecondsPerStep - dequant) / 1000) / gemm;
        }
        r.Metrics["first_loss"] = t.Losses[0];
        r.Metrics["last_loss"] = t.Losses[^1];
        string batch = options.GradientAccumulationSteps > 1 ? $"batch {options.BatchSize * options.GradientAccumulationSteps} x {seq} as {options.GradientAccumulationSteps} accumulated micro-batches of {options.BatchSize}" : $"batch {options.BatchSize} x {seq}";
        r.Settings["run"] = $"{what}, {batch}, {t.Steps} steps (median; the first warms up){(checkpointing ? ", gradient checkpointing" : "")}";
        return r;
    }

    /// <summary>
    /// This process's fp32 GEMM rate (2048², the median of <paramref name="runs"/> after warm-ups), measured
    /// between the steps it is compared with: this machine's rate drifts by a third between processes and
    /// over minutes (a shared host), so a ratio against another run's figure would measure the drift.
    /// </summary>
    static double GemmRate(bool quick, int warmups = 2, int runs = 7)
    {
        int n = quick ? 256 : 2048;
        using var a = randn(n, n);
        using var b = randn(n, n);
        var times = new List<double>();
        for (int i = 0; i < warmups + runs; i++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            matmul(a, b).Dispose();
            if (i >= warmups) times.Add(clock.Elapsed.TotalSeconds);
        }
        times.Sort();
        return 2.0 * n * n * n / times[times.Count / 2] / 1e9;
    }

    static string SpeedName(string method, int batch, bool checkpointing) => $"train-speed-synthetic50M-{method}-b{batch}{(checkpointing ? "-ckpt" : "")}";

    /// <summary>Weights that take part in a matmul per token: every linear layer and the (tied or untied) head.</summary>
    static double MatmulWeights(ModelConfig c)
    {
        double attention = c.HiddenSize * (double)c.NumAttentionHeads * c.HeadDim * 2 + c.HiddenSize * (double)c.NumKeyValueHeads * c.HeadDim * 2;
        double mlp = 3.0 * c.HiddenSize * c.IntermediateSize;
        return c.NumHiddenLayers * (attention + mlp) + (double)c.HiddenSize * c.VocabSize;
    }

    /// <summary>
    /// The same measurement on TinyLlama-1.1B's shape (the bfloat16 folder of the memory rows, loaded as a
    /// float32, int8 or NF4 base), LoRA r8 all-linear at batch 1 x 512, 3 steps. A quantized base pays for
    /// dequantizing each projection in the forward and again in the backward: its share against the same
    /// ideal FLOPs shows that cost (the float32 row is the one without it).
    /// </summary>
    static BenchResult TrainBigSpeed(string baseFormat, bool checkpointing, bool quick)
    {
        var model = LoadedModel.Load(TinyLlamaLoad(baseFormat, quick)).Model;
        var (loaded, options) = TinyLlamaLoraRun(model, checkpointing, quick, steps: 3, trimEachStep: false);
        return Measured($"train-speed-tinyllama1b-lora-{baseFormat}{(checkpointing ? "-ckpt" : "")}", loaded, options, "lora", quick,
            $"TinyLlama-1.1B shape, LoRA r8 all-linear, {baseFormat} base");
    }

    public static IEnumerable<KeyValuePair<string, Func<bool, BenchResult>>> SpeedScenarios()
    {
        foreach (var baseFormat in new[] { "fp32", "int8", "nf4" })
            foreach (bool checkpointing in new[] { false, true })
                yield return KeyValuePair.Create<string, Func<bool, BenchResult>>($"train-speed-tinyllama1b-lora-{baseFormat}{(checkpointing ? "-ckpt" : "")}", quick => TrainBigSpeed(baseFormat, checkpointing, quick));
        yield return KeyValuePair.Create<string, Func<bool, BenchResult>>("train-speed-synthetic50M-lora-b16-accum4", quick => TrainSpeed("lora", 16, false, quick, accumulate: 4));
        foreach (var method in new[] { "lora", "full" })
            foreach (int batch in new[] { 1, 4, 8, 16 })
                foreach (bool checkpointing in new[] { false, true })
                    if (!checkpointing || batch == 16)
                        yield return KeyValuePair.Create<string, Func<bool, BenchResult>>(SpeedName(method, batch, checkpointing), quick => TrainSpeed(method, batch, checkpointing, quick));
    }

    /// <summary>Runs an action after each training step, on the training thread (Progress&lt;T&gt; would post it elsewhere).</summary>
    sealed class StepHook(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }
}
