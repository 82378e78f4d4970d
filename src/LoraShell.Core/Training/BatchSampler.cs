using LoraShell.Core.Models.Blocks;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>Rows of a batch: token ids, next-token targets (-100: not predicted), and how the rows pack documents (null: each row is one sequence).</summary>
public sealed record SampledBatch(Tensor Inputs, Tensor Targets, PackedLayout? Packed)
{
    public void Deconstruct(out Tensor inputs, out Tensor targets) { inputs = Inputs; targets = Targets; }
}

/// <summary>
/// Cuts a token stream into windows of SequenceLength + 1 tokens (stride SequenceLength) and hands
/// them out in a seeded random order, reshuffled each epoch. The k-th window drawn depends only on
/// (seed, k), so a resumed run sees exactly the batches the uninterrupted run would have seen.
/// Targets the stream marks as not predicted become -100 (ignored by the loss). With
/// <see cref="PackingMode.Documents"/>, a window that holds the start of a document comes with a
/// <see cref="PackedLayout"/>, so each of its documents is read alone; one without is the plain causal case.
/// </summary>
public sealed class BatchSampler
{
    public const long IgnoreIndex = -100;
    readonly TokenStream _stream;
    readonly int _length;
    readonly long _seed;
    readonly PackingMode _packing;
    readonly Dictionary<long, int[]> _orders = new();

    public BatchSampler(TokenStream stream, int sequenceLength, long seed, PackingMode packing = PackingMode.Stream)
    {
        _stream = stream;
        _length = sequenceLength;
        _seed = seed;
        _packing = packing;
        WindowCount = stream.Length > sequenceLength ? (stream.Length - 1) / sequenceLength : 0;
    }

    public int WindowCount { get; }

    int[] Order(long epoch)
    {
        if (_orders.TryGetValue(epoch, out var order)) return order;
        order = Enumerable.Range(0, WindowCount).ToArray();
        new Random(unchecked((int)(_seed * 1_000_003 + epoch))).Shuffle(order);
        if (_orders.Count > 4) _orders.Clear();
        return _orders[epoch] = order;
    }

    /// <summary>Whether any of the first <paramref name="maxWindows"/> windows (0: all) has a token to predict.</summary>
    public bool HasTargets(int maxWindows = 0)
    {
        int total = maxWindows > 0 ? Math.Min(maxWindows, WindowCount) : WindowCount;
        for (int w = 0; w < total; w++)
            for (int t = 1; t <= _length; t++)
                if (_stream.Predict[w * _length + t]) return true;
        return false;
    }

    /// <summary>Inputs and targets [rows, SequenceLength] for draws firstDraw .. firstDraw + rows - 1.</summary>
    public SampledBatch Batch(long firstDraw, int rows, Device device)
        => Windows(Enumerable.Range(0, rows).Select(r => { long draw = firstDraw + r; return Order(draw / WindowCount)[(int)(draw % WindowCount)]; }).ToList(), device);

    /// <summary>Every window in order (for validation), in batches of at most <paramref name="rows"/>.</summary>
    public IEnumerable<SampledBatch> Sequential(int rows, Device device, int maxWindows = 0)
    {
        int total = maxWindows > 0 ? Math.Min(maxWindows, WindowCount) : WindowCount;
        for (int first = 0; first < total; first += rows)
            yield return Windows(Enumerable.Range(first, Math.Min(rows, total - first)).ToList(), device);
    }

    /// <summary>
    /// The given windows as inputs and next-token targets (-100 where the stream predicts nothing; a document's
    /// first token is never predicted, so no target crosses a document boundary).
    /// </summary>
    SampledBatch Windows(IReadOnlyList<int> windows, Device device)
    {
        var inputs = new long[windows.Count * _length];
        var targets = new long[windows.Count * _length];
        var starts = new bool[windows.Count * _length];
        bool packed = false;
        for (int r = 0; r < windows.Count; r++)
        {
            int start = windows[r] * _length;
            for (int t = 0; t < _length; t++)
            {
                inputs[r * _length + t] = _stream.Tokens[start + t];
                targets[r * _length + t] = _stream.Predict[start + t + 1] ? _stream.Tokens[start + t + 1] : IgnoreIndex;
                starts[r * _length + t] = _stream.Starts[start + t];
                packed |= t > 0 && _stream.Starts[start + t];
            }
        }
        var shape = new long[] { windows.Count, _length };
        var layout = packed && _packing == PackingMode.Documents ? PackedLayout.FromStarts(starts, windows.Count, _length, device) : null;
        return new SampledBatch(tensor(inputs, shape, device: device), tensor(targets, shape, device: device), layout);
    }
}
