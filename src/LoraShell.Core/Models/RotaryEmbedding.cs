using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Hugging Face's rotate-half rotary position embedding: dimension i of a head is paired with
/// i + d/2 (llama2.c pairs i with i + 1; its loader permutes q/k rows to match this layout).
/// cos/sin tables are computed in float32 and cached per device.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly int _headDim;
    readonly double _theta;
    Tensor? _cos, _sin;

    public RotaryEmbedding(int headDim, double theta)
    {
        _headDim = headDim;
        _theta = theta;
    }

    /// <summary>cos and sin for positions [start, start + length), shape [length, headDim], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Table(long start, long length, Device device, ScalarType dtype)
    {
        var (cos, sin) = Tables(start + length, device);
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
                Build(Math.Max(needed, 512), device);
            }
            return (_cos!, _sin!);
        }
    }

    void Build(long positions, Device device)
    {
        using var scope = NewDisposeScope();
        var invFreq = 1.0 / pow(_theta, arange(0, _headDim, 2, dtype: ScalarType.Float64, device: device) / _headDim);
        var t = arange(positions, dtype: ScalarType.Float64, device: device);
        var freqs = outer(t, invFreq);
        var emb = cat(new[] { freqs, freqs }, -1);
        _cos = emb.cos().to(ScalarType.Float32).DetachFromDisposeScope();
        _sin = emb.sin().to(ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>x: [batch, heads, seq, headDim]; cos/sin: [seq, headDim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
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
