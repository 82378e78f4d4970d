using System.Diagnostics;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>
/// The GEMM floor of a LoRA all-linear training step on the synthetic 50M model at batch x 256 (issue 27):
/// every matmul the step performs, by shape, timed alone on this machine's libtorch (MKL). Their sum is what
/// the step would cost if it did nothing but its matmuls; the step's time above it is overhead (elementwise
/// ops, the loss, OpenMP waits, allocation). Also shows which shapes MKL runs far below its square-GEMM rate.
/// </summary>
static partial class Scenarios
{
    sealed record GemmShape(string Name, long M, long K, long N, bool TransposeB, int Count);

    static BenchResult GemmFloor(int batch, bool quick)
    {
        var c = BenchModels.Synthetic50M;
        long t = (quick ? 1 : batch) * 256L, d = c.HiddenSize, f = c.IntermediateSize, v = c.VocabSize, r = 8;
        int layers = (int)c.NumHiddenLayers;
        long chunk = LoraShell.Core.Training.ChunkedCrossEntropy.RowsPerChunk(v);
        int chunks = (int)((t + chunk - 1) / chunk);
        // (rows, inner, cols): y[M,N] = x[M,K] · w, w stored [N,K] (a linear's weight) when TransposeB.
        var shapes = new List<GemmShape>
        {
            new("attn fwd x·Wᵀ (q,k,v,o)", t, d, d, true, 4 * layers),
            new("attn bwd dY·W (q,k,v,o)", t, d, d, false, 4 * layers),
            new("mlp fwd x·Wᵀ (gate, up)", t, d, f, true, 2 * layers),
            new("mlp bwd dY·W (gate, up)", t, f, d, false, 2 * layers),
            new("mlp fwd x·Wᵀ (down)", t, f, d, true, layers),
            new("mlp bwd dY·W (down)", t, d, f, false, layers),
            new("head fwd chunk x·Eᵀ", chunk, d, v, true, chunks),
            new("head bwd chunk dL·E", chunk, v, d, false, chunks),
        };
        // LoRA's own GEMMs on each adapted projection (in → out): x·Aᵀ, h·Bᵀ; backward dY·B, dA = (dY·B)ᵀ·x, dB = dYᵀ·h.
        foreach (var (kind, inF, outF, count) in new[] { ("attention", d, d, 4 * layers), ("gate/up", d, f, 2 * layers), ("down", f, d, layers) })
        {
            shapes.Add(new($"lora fwd x·Aᵀ ({kind})", t, inF, r, true, count));
            shapes.Add(new($"lora fwd h·Bᵀ ({kind})", t, r, outF, true, count));
            shapes.Add(new($"lora bwd dY·B ({kind})", t, outF, r, false, count));
            shapes.Add(new($"lora bwd dA = (dY·B)ᵀ·x ({kind})", r, t, inF, false, count));
            shapes.Add(new($"lora bwd dBᵀ = hᵀ·dY ({kind})", r, t, outF, false, count)); // the shape autograd picks for a contiguous Bᵀ (LoraVariant)
        }
        var res = new BenchResult { Scenario = $"gemm-floor-synthetic50M-lora-b{batch}" };
        double floorMs = 0, flops = 0;
        foreach (var s in shapes)
        {
            using var scope = NewDisposeScope();
            var a = s.Name.Contains("dA") || s.Name.Contains("dB") ? randn(s.K, s.M).t() : randn(s.M, s.K); // weight grads read a transposed activation
            var b = s.TransposeB ? randn(s.N, s.K) : randn(s.K, s.N);
            Tensor Run() => s.TransposeB ? nn.functional.linear(a, b) : a.matmul(b);
            Run().Dispose();
            var times = new List<double>();
            for (int i = 0; i < (quick ? 2 : 7); i++)
            {
                var clock = Stopwatch.StartNew();
                Run().Dispose();
                times.Add(clock.Elapsed.TotalMilliseconds);
            }
            times.Sort();
            double ms = times[times.Count / 2];
            double gflops = 2.0 * s.M * s.K * s.N / (ms / 1000) / 1e9;
            res.Metrics[$"{s.Name} ms"] = ms * s.Count;
            res.Metrics[$"{s.Name} gflops"] = gflops;
            floorMs += ms * s.Count;
            flops += 2.0 * s.M * s.K * s.N * s.Count;
        }
        res.Metrics["floor_ms"] = floorMs;
        res.Metrics["floor_gflops"] = flops / (floorMs / 1000) / 1e9;
        res.Metrics["gemm_gflops"] = GemmRate(quick);
        res.Metrics["floor_share_of_gemm"] = res.Metrics["floor_gflops"] / res.Metrics["gemm_gflops"];
        res.Settings["run"] = $"{t} tokens, layers {layers}, head chunks of {chunk} rows";
        return res;
    }
}

static partial class Scenarios
{
    /// <summary>The LM head's GEMMs (forward x·Eᵀ and the input gradient dL·E) at several loss-chunk sizes: what chunking costs in GEMM rate.</summary>
    static BenchResult HeadChunks(bool quick)
    {
        var c = BenchModels.Synthetic50M;
        long d = c.HiddenSize, v = c.VocabSize, tokens = quick ? 512 : 4096;
        var res = new BenchResult { Scenario = "gemm-head-chunks-synthetic50M" };
        using var e = randn(v, d);
        foreach (long rows in new long[] { 64, 128, 262, 512, 1024, 2048 })
        {
            using var scope = NewDisposeScope();
            var x = randn(rows, d);
            var g = randn(rows, v);
            double Time(Func<Tensor> f)
            {
                f().Dispose();
                var times = new List<double>();
                for (int i = 0; i < (quick ? 2 : 5); i++) { var clock = Stopwatch.StartNew(); f().Dispose(); times.Add(clock.Elapsed.TotalMilliseconds); }
                times.Sort();
                return times[times.Count / 2];
            }
            double fwd = Time(() => nn.functional.linear(x, e)), bwd = Time(() => g.matmul(e));
            res.Metrics[$"rows {rows} fwd gflops"] = 2.0 * rows * d * v / (fwd / 1000) / 1e9;
            res.Metrics[$"rows {rows} bwd gflops"] = 2.0 * rows * d * v / (bwd / 1000) / 1e9;
            res.Metrics[$"rows {rows} ms per {tokens} tokens"] = (fwd + bwd) * tokens / rows;
        }
        return res;
    }
}

static partial class Scenarios
{
    /// <summary>
    /// LoRA's up-projection in autograd: addmm(y, x·Aᵀ, Bᵀ) with Bᵀ a transposed view of B [out, r] (PEFT's layout)
    /// against a contiguous [r, out] copy. The two give autograd different strides for the weight gradient, and so
    /// different GEMM shapes for dB ([out, T]·[T, r] or [r, T]·[T, out]).
    /// </summary>
    static BenchResult LoraBackwardLayouts(bool quick)
    {
        long t = quick ? 256 : 4096, r = 8;
        var res = new BenchResult { Scenario = "lora-backward-layouts" };
        foreach (long outF in new long[] { 512, 1536 })
        {
            using var scope = NewDisposeScope();
            var down = randn(t, r);
            var y = randn(t, outF);
            var b = randn(outF, r).requires_grad_(true);
            var g = randn(t, outF);
            double Time(bool contiguous)
            {
                var times = new List<double>();
                for (int i = 0; i < (quick ? 2 : 12); i++)
                {
                    using var inner = NewDisposeScope();
                    var clock = Stopwatch.StartNew();
                    var bt = contiguous ? b.t().contiguous() : b.t();
                    var outp = addmm(y, down, bt, beta: 1, alpha: 2);
                    outp.backward(new[] { g });
                    times.Add(clock.Elapsed.TotalMilliseconds);
                    b.grad!.zero_();
                }
                times.Sort();
                return times[times.Count / 2];
            }
            Time(false);
            res.Metrics[$"out {outF} transposed view ms"] = Time(false);
            res.Metrics[$"out {outF} contiguous copy ms"] = Time(true);
        }
        res.Settings["run"] = $"{t} tokens, r {r}, forward + backward of the up-projection (dB only)";
        return res;
    }
}
