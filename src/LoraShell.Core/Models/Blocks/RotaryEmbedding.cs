using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// Hugging Face's rotate-half rotary position embedding: dimension i of a head is paired with
/// i + d/2 (llama2.c pairs i with i + 1; its loader permutes q/k rows to match this layout). Only the
/// first <c>rotary_dim</c> dimensions rotate (Phi-3's partial_rotary_factor); the rest pass through.
/// Frequencies follow <c>rope_scaling</c> as transformers' modeling_rope_utils computes them
/// (<see cref="RopeFrequencies"/>). cos/sin tables are computed in float64, stored in float32 and
/// cached per device; dynamic NTK scaling depends on the sequence length, so its tables are
/// recomputed for lengths past max_position_embeddings.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly int _rotaryDim;
    readonly ModelConfig _config;
    Tensor? _cos, _sin;

    public RotaryEmbedding(ModelConfig config)
    {
        _config = config;
        _rotaryDim = config.RotaryDim;
    }

    public int RotaryDim => _rotaryDim;

    /// <summary>cos and sin for positions [start, start + length), shape [length, rotaryDim], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Table(long start, long length, Device device, ScalarType dtype)
    {
        long needed = start + length;
        if (_config.RopeScaling?.Type == RopeScaling.Dynamic && needed > _config.MaxPositionEmbeddings)
        {
            // The NTK base grows with the sequence, so positions of a longer sequence rotate differently.
            using var scope = NewDisposeScope();
            var (c, s) = Build(needed, device, needed);
            return (c.narrow(0, start, length).to(dtype).MoveToOuterDisposeScope(), s.narrow(0, start, length).to(dtype).MoveToOuterDisposeScope());
        }
        var (cos, sin) = Tables(needed, device);
        return (cos.narrow(0, start, length).to(dtype), sin.narrow(0, start, length).to(dtype));
    }

    // Tables only grow; a replaced table may still be read by another thread, so it is kept until
    // Dispose instead of being freed at once.
    readonly object _gate = new();
    readonly List<Tensor> _retired = new();

    (Tensor, Tensor) Tables(long needed, Device device)
    {
        lock (_gate)
        {
            if (_cos is null || _cos.shape[0] < needed || _cos.device != device)
            {
                if (_cos is not null) { _retired.Add(_cos); _retired.Add(_sin!); }
                long positions = Math.Max(needed, 512);
                if (_config.RopeScaling?.Type == RopeScaling.Dynamic) positions = Math.Min(positions, _config.MaxPositionEmbeddings);
                (_cos, _sin) = Build(Math.Max(positions, needed), device, Math.Max(positions, needed));
                _cos = _cos.DetachFromDisposeScope();
                _sin = _sin.DetachFromDisposeScope();
            }
            return (_cos!, _sin!);
        }
    }

    (Tensor Cos, Tensor Sin) Build(long positions, Device device, long sequenceLength)
    {
        using var scope = NewDisposeScope();
        var invFreq = tensor(RopeFrequencies.InverseFrequencies(_config, sequenceLength), device: device);
        var t = arange(positions, dtype: ScalarType.Float64, device: device);
        var freqs = outer(t, invFreq);
        var emb = cat(new[] { freqs, freqs }, -1);
        return (emb.cos().to(ScalarType.Float32).MoveToOuterDisposeScope(), emb.sin().to(ScalarType.Float32).MoveToOuterDisposeScope());
    }

    /// <summary>x: [batch, heads, seq, headDim]; cos/sin: [seq, rotaryDim] with rotaryDim ≤ headDim.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long rotary = cos.shape[^1], headDim = x.shape[^1];
        if (rotary == headDim) return Rotate(x, cos, sin);
        var rotated = Rotate(x.narrow(-1, 0, rotary), cos, sin);
        return cat(new[] { rotated, x.narrow(-1, rotary, headDim - rotary) }, -1);
    }

    static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat(new[] { -x2, x1 }, -1);
        return x * cos + rotated * sin;
    }

    public void Dispose()
    {
        _cos?.Dispose();
        _sin?.Dispose();
        foreach (var t in _retired) t.Dispose();
        _retired.Clear();
    }
}
