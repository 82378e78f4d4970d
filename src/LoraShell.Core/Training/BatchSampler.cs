using LoraShell.Core.Models.Blocks;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>Rows of a batch: token ids, next-token targets (-100: not predicted), and how the rows pack documents (null: each row is one sequence).</summary>
public sealed record SampledBatch(Tensor Inputs, Tensor Targets, PackedLayout? Packed)
{
    public void Deconstruct(out Tensor inputs, out Tensor targets) { inputs = Inputs; targets = Targets; }
}

/// <summary>
/// Cuts a token stream into windows of SequenceLength input tokens and hands them out in a seeded random
/// order, reshuffled each epoch. The k-th window drawn depends only on (seed, k), so a resumed run sees
/// exactly the batches the uninterrupted run would have seen. Targets the stream marks as not predicted
/// become -100 (ignored by the loss), and no target crosses into another document.
/// <see cref="PackingMode.Stream"/> (and any stream of one document) cuts windows of SequenceLength + 1 tokens
/// with stride SequenceLength. <see cref="PackingMode.Documents"/> packs whole documents into windows
/// (<see cref="DocumentPacker"/>), padding what they leave free, and a window that holds several comes
/// with a <see cref="PackedLayout"/>, so each is read alone.
/// </summary>
public sealed class BatchSampler
{
    public const long IgnoreIndex = -100;
    readonly TokenStream _stream;
    readonly int _length;
    readonly long _seed;
    readonly PackingMode _packing;
    readonly IReadOnlyList<Segment[]>? _packed; // whole-document windows, or null for cuts of the stream
    readonly Dictionary<long, int[]> _orders = new();

    public BatchSampler(TokenStream stream, int sequenceLength, long seed, PackingMode packing = PackingMode.Stream)
    {
        _stream = stream;
        _length = sequenceLength;
        _seed = seed;
        _packing = packing;
        if (packing == PackingMode.Documents && stream.DocumentCount > 1) _packed = DocumentPacker.Pack(stream, sequenceLength);
        WindowCount = _packed?.Count ?? (stream.Length > sequenceLength ? (stream.Length - 1) / sequenceLength : 0);
    }

    public int WindowCount { get; }

    /// <summary>Share of the windows' input slots that hold data rather than padding (1 for cuts of the stream).</summary>
    public double FillRatio => _packed is null || _packed.Count == 0 ? 1 : _packed.Sum(w => w.Sum(s => (long)s.Length)) / ((double)_packed.Count * _length);

    /// <summary>The segments of window <paramref name="index"/>: one cut of the stream, or the documents packed into it.</summary>
    Segment[] Window(int index) => _packed?[index] ?? new[] { new Segment(index * _length, _length) };

    /// <summary>The target of input position <paramref name="at"/> in the stream: the next token when it is predicted, else -100.</summary>
    long TargetAfter(int at) => at + 1 < _stream.Length && _stream.Predict[at + 1] ? _stream.Tokens[at + 1] : IgnoreIndex;

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
            foreach (var s in Window(w))
                for (int t = 0; t < s.Length; t++)
                    if (TargetAfter(s.Start + t) != IgnoreIndex) return true;
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
        Array.Fill(targets, IgnoreIndex); // padding after packed documents: token 0, never predicted, read as part of the last document (which cannot see it)
        bool packed = false;
        for (int r = 0; r < windows.Count; r++)
        {
            int t = 0;
            foreach (var segment in Window(windows[r]))
                for (int i = 0; i < segment.Length; i++, t++)
                {
                    int at = segment.Start + i;
                    inputs[r * _length + t] = _stream.Tokens[at];
                    targets[r * _length + t] = TargetAfter(at);
                    // A segment starts a document for attention wherever it sits: a packed remainder is read alone too.
                    bool start = i == 0 || _stream.Starts[at];
                    starts[r * _length + t] = start;
                    packed |= t > 0 && start;
                }
        }
        var shape = new long[] { windows.Count, _length };
        var layout = packed && _packing == PackingMode.Documents ? PackedLayout.FromStarts(starts, windows.Count, _length, device) : null;
        return new SampledBatch(tensor(inputs, shape, device: device), tensor(targets, shape, device: device), layout);
    }
}
