using System.Diagnostics;
using LoraShell.Core.IO;
using LoraShell.Core.Memory;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>
/// A 1B-class model on this machine: LoRA training of a random model with TinyLlama-1.1B's shape over a
/// float32, bfloat16, int8 or NF4 base, with and without gradient checkpointing.
/// </summary>
static partial class Scenarios
{
    /// <summary>
    /// Loads the TinyLlama-shaped model (written once as a bfloat16 Hugging Face folder under out/) in the
    /// base format asked for, then runs LoRA steps (r 8 on every linear layer) at batch 1 x 512. Reports
    /// what loading peaked at beside the model's own size (loading reads tensor by tensor, so the two
    /// should be close), the training peak and step time, and the estimator's figure for the same run.
    /// </summary>
    static BenchResult TrainBigLora(string baseFormat, bool checkpointing, bool quick)
    {
        BenchModels.TinyLlamaFolder(quick); // written once, before the memory baseline
        NativeMemory.MapLargeAllocations();
        using (var warm = ones(64, 64)) warm.matmul(warm).Dispose();
        NativeMemory.ReleaseManagedGarbage();
        NativeMemory.Trim();
        double runtimeMiB = MemoryMeter.CurrentMiB;
        MemoryMeter.ResetPeak();

        var clock = Stopwatch.StartNew();
        var load = TinyLlamaLoad(baseFormat, quick);
        var model = LoadedModel.Load(load).Model;
        double loadSeconds = clock.Elapsed.TotalSeconds;
        double loadPeakMiB = MemoryMeter.PeakMiB - runtimeMiB;
        double modelMiB = model.WeightBytes / 1048576.0;
        var (loaded, options) = TinyLlamaLoraRun(model, checkpointing, quick, steps: 2, trimEachStep: true);
        var t = Trainer.Run(loaded, options);
        var estimate = MemoryEstimator.Estimate(model.Config, new MemoryEstimateOptions
        {
            Method = TrainingMethod.Lora, Precision = baseFormat == "bf16" ? TrainingPrecision.Bf16Mixed : TrainingPrecision.Fp32,
            Quantization = load.Quantization, BatchSize = 1, SequenceLength = options.SequenceLength, ActivationCheckpointing = checkpointing,
            LossChunkTokens = ChunkedCrossEntropy.RowsPerChunk(model.Config.VocabSize), LoraRank = 8,
        });

        var r = new BenchResult { Scenario = $"train-tinyllama1b-lora-{baseFormat}{(checkpointing ? "-ckpt" : "")}" };
        r.Metrics["load_s"] = loadSeconds;
        r.Metrics["load_peak_mib"] = loadPeakMiB;
        r.Metrics["model_mib"] = modelMiB;
        r.Metrics["peak_mib"] = t.PeakMemoryMiB;
        r.Metrics["training_peak_mib"] = t.PeakMemoryMiB - runtimeMiB;
        r.Metrics["estimate_mib"] = estimate.TotalBytes / 1048576.0;
        r.Metrics["estimate_over_measured"] = estimate.TotalBytes / 1048576.0 / (t.PeakMemoryMiB - runtimeMiB);
        r.Metrics["ms_per_step"] = t.MillisecondsPerStep;
        r.Metrics["trainable_params"] = t.TrainableParameters;
        r.Settings["run"] = $"{t.Steps} steps, batch 1 x {options.SequenceLength}, LoRA r 8 all-linear, {(quick ? "tiny stand-in" : "hidden 2048, 22 layers, 32 heads / 4 KV, MLP 5632, vocab 32000")}";
        r.Settings["base"] = baseFormat switch { "fp32" => "float32", "bf16" => "bfloat16 (compute in bfloat16)", "int8" => "int8 projections, float32 rest", _ => "NF4 projections, float32 rest" };
        r.Settings["parameters"] = model.Config.ParameterCount.ToString("N0");
        return r;
    }

    /// <summary>The TinyLlama-shaped folder loaded as a float32 (or bfloat16), int8 or NF4 base.</summary>
    static ModelLoadOptions TinyLlamaLoad(string baseFormat, bool quick) => new()
    {
        Path = BenchModels.TinyLlamaFolder(quick),
        DType = baseFormat == "bf16" ? ModelDType.BFloat16 : ModelDType.Float32,
        Quantization = baseFormat switch { "int8" => BaseQuantization.Int8, "nf4" => BaseQuantization.Nf4, _ => BaseQuantization.None },
    };

    /// <summary>LoRA r8 on every linear layer of the 1.1B model, trained at batch 1 x 512 on Tiny Shakespeare.</summary>
    static (LoadedModel Loaded, TrainingOptions Options) TinyLlamaLoraRun(CausalLM model, bool checkpointing, bool quick, int steps, bool trimEachStep)
    {
        // The model's vocabulary is TinyLlama's 32,000; the text is tokenized with stories260K's 512 tokens,
        // a subset of its ids, which is all a speed and memory measurement needs.
        string shared = BenchModels.SharedRoot();
        var tokenizer = LoraShell.Core.Tokenizers.Llama2cTokenizer.Load(Path.Combine(shared, "models", "stories260K", "tok512.bin"));
        var loaded = new LoadedModel(model, tokenizer, "tinyllama-1.1b-shape", "bench");
        loaded.Adapters.Add("default", new LoraShell.Core.Lora.LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = "all-linear" }, seed: 1);
        return (loaded, new TrainingOptions
        {
            Method = TrainingMethod.Lora,
            DataPaths = new[] { Path.Combine(shared, "data", "tinyshakespeare", "input.txt") }, MaxSteps = steps,
            BatchSize = 1, SequenceLength = quick ? 64 : 512, LearningRate = 1e-4, MaxEvalWindows = 1, Seed = 1,
            TrimMemoryEachStep = trimEachStep, GradientCheckpointing = checkpointing,
        });
    }

    /// <summary>
    /// Invoke-SvdDelta on a Qwen2-1.5B-shaped pair in bfloat16 (1.54B parameters, 3.1 GB per checkpoint,
    /// four shards and an index each, as Hugging Face saves them): the fine-tuned copy is the base plus a
    /// planted rank-16 delta in every projection, compressed at rank 16 (randomized). Generated in a
    /// temporary folder and deleted; wall time and peak RSS against the largest tensor.
    /// </summary>
    static BenchResult SvdDeltaSharded(bool quick)
    {
        int hidden = quick ? 128 : 1536, inter = quick ? 352 : 8960, layers = quick ? 2 : 28, kv = quick ? 32 : 256, vocab = quick ? 1024 : 151936;
        const int planted = 16;
        string dir = Path.Combine(Path.GetTempPath(), $"lorashell-svd-sharded-{Environment.ProcessId}");
        try
        {
            var config = new System.Text.Json.Nodes.JsonObject
            {
                ["model_type"] = "qwen2", ["hidden_size"] = hidden, ["intermediate_size"] = inter, ["num_hidden_layers"] = layers,
                ["num_attention_heads"] = quick ? 4 : 12, ["num_key_value_heads"] = quick ? 1 : 2, ["vocab_size"] = vocab,
                ["max_position_embeddings"] = 32768, ["tie_word_embeddings"] = true, ["torch_dtype"] = "bfloat16",
            };
            // (name, rows, cols) in Hugging Face's order; norms and biases are 1-D.
            var tensors = new List<(string Name, long[] Shape)> { ("model.embed_tokens.weight", new long[] { vocab, hidden }) };
            for (int l = 0; l < layers; l++)
            {
                string p = $"model.layers.{l}.";
                tensors.Add((p + "input_layernorm.weight", new long[] { hidden }));
                foreach (var (m, o, i) in new[] { ("self_attn.q_proj", hidden, hidden), ("self_attn.k_proj", kv, hidden), ("self_attn.v_proj", kv, hidden), ("self_attn.o_proj", hidden, hidden) })
                {
                    tensors.Add((p + m + ".weight", new long[] { o, i }));
                    if (m != "self_attn.o_proj") tensors.Add((p + m + ".bias", new long[] { o }));
                }
                tensors.Add((p + "post_attention_layernorm.weight", new long[] { hidden }));
                foreach (var (m, o, i) in new[] { ("mlp.gate_proj", inter, hidden), ("mlp.up_proj", inter, hidden), ("mlp.down_proj", hidden, inter) })
                    tensors.Add((p + m + ".weight", new long[] { o, i }));
            }
            tensors.Add(("model.norm.weight", new long[] { hidden }));

            long parameters = tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
            long largest = tensors.Max(t => t.Shape.Aggregate(1L, (a, b) => a * b));
            var genClock = Stopwatch.StartNew();
            foreach (var (which, delta) in new[] { ("base", false), ("ft", true) })
            {
                string folder = Path.Combine(dir, which);
                Directory.CreateDirectory(folder);
                File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
                const int shards = 4;
                var weightMap = new System.Text.Json.Nodes.JsonObject();
                long perShard = (parameters + shards - 1) / shards, inShard = 0, totalBytes = 0;
                int shard = 1;
                var writer = new LoraShell.Core.IO.SafetensorsStreamWriter(folder);
                string ShardName(int k) => $"model-{k:D5}-of-{shards:D5}.safetensors";
                for (int i = 0; i < tensors.Count; i++)
                {
                    var (name, shape) = tensors[i];
                    using (var scope = NewDisposeScope())
                    {
                        manual_seed(i);
                        var t = shape.Length == 1 ? ones(shape) : randn(shape) * 0.02f;
                        if (delta && shape.Length == 2 && name.Contains("_proj"))
                        {
                            manual_seed(100_000 + i);
                            t = t + (randn(shape[0], planted) * 0.008f).matmul(randn(planted, shape[1]) * 0.008f);
                        }
                        writer.Add(name, t.to_type(ScalarType.BFloat16));
                    }
                    weightMap[name] = ShardName(shard);
                    long n = shape.Aggregate(1L, (a, b) => a * b);
                    inShard += n; totalBytes += 2 * n;
                    if ((inShard >= perShard && shard < shards) || i == tensors.Count - 1)
                    {
                        writer.Finish(Path.Combine(folder, ShardName(shard)));
                        writer.Dispose();
                        if (i < tensors.Count - 1) { writer = new LoraShell.Core.IO.SafetensorsStreamWriter(folder); shard++; inShard = 0; }
                    }
                }
                var index = new System.Text.Json.Nodes.JsonObject { ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["total_size"] = totalBytes }, ["weight_map"] = weightMap };
                File.WriteAllText(Path.Combine(folder, LoraShell.Core.IO.SafetensorsCheckpoint.IndexFileName), index.ToJsonString());
            }
            double generateSeconds = genClock.Elapsed.TotalSeconds;

            NativeMemory.ReleaseManagedGarbage();
            NativeMemory.Trim();
            double baseline = MemoryMeter.CurrentMiB;
            MemoryMeter.ResetPeak();
            var clock = Stopwatch.StartNew();
            var summary = LoraShell.Core.Delta.SvdDeltaCompressor.Run(new LoraShell.Core.Delta.SvdDeltaOptions
            {
                BasePath = Path.Combine(dir, "base"), FineTunedPath = Path.Combine(dir, "ft"), OutputPath = Path.Combine(dir, "delta"),
                Policy = new LoraShell.Core.Delta.RankPolicy { Rank = planted }, Method = LoraShell.Core.Delta.SvdMethod.Randomized, Seed = 1,
            }, _ => { });
            double seconds = clock.Elapsed.TotalSeconds;
            double peak = MemoryMeter.PeakMiB;
            var r = new BenchResult { Scenario = "svd-delta-qwen2-1.5b-sharded-bf16" };
            r.Metrics["seconds"] = seconds;
            r.Metrics["generate_s"] = generateSeconds;
            r.Metrics["checkpoint_mib"] = parameters * 2 / 1048576.0;
            r.Metrics["largest_tensor_mib"] = largest * 2 / 1048576.0;
            r.Metrics["baseline_rss_mib"] = baseline;
            r.Metrics["peak_rss_mib"] = peak;
            r.Metrics["peak_over_baseline_in_largest_tensors"] = (peak - baseline) / (largest * 2 / 1048576.0);
            r.Metrics["worst_relative_error"] = summary.WorstRelativeError;
            r.Settings["run"] = $"{parameters:N0} parameters per checkpoint in bfloat16, 4 shards; planted rank-{planted} delta in every projection; randomized SVD at r {planted}";
            return r;
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
    }
}
