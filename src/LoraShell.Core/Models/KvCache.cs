using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Keys and values of past positions, one pair per decoder layer, for incremental decoding.
/// Tensors are held outside any dispose scope and released by <see cref="Dispose"/>.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor?[] _keys;
    readonly Tensor?[] _values;

    public KvCache(int layers)
    {
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    /// <summary>Number of positions already cached.</summary>
    public long Length => _keys[0] is Tensor k ? k.shape[2] : 0;

    /// <summary>Appends this step's keys/values [batch, kvHeads, seq, headDim]; returns all of them.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        var oldK = _keys[layer];
        var oldV = _values[layer];
        var k = oldK is null ? keys.alias() : cat(new[] { oldK, keys }, 2);
        var v = oldV is null ? values.alias() : cat(new[] { oldV, values }, 2);
        _keys[layer] = k.alias().DetachFromDisposeScope();
        _values[layer] = v.alias().DetachFromDisposeScope();
        oldK?.Dispose();
        oldV?.Dispose();
        return (k, v);
    }

    public void Dispose()
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            _keys[i]?.Dispose(); _keys[i] = null;
            _values[i]?.Dispose(); _values[i] = null;
        }
    }
}
