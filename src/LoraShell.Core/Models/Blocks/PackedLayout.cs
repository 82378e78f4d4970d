using static TorchSharp.torch;

namespace LoraShell.Core.Models.Blocks;

/// <summary>
/// Rows that hold several documents back to back (what TRL calls padding-free packing): each token's
/// position inside its own document, and the block-diagonal causal mask that lets it attend only to the
/// tokens of its document up to itself. A row is read as if each of its documents were alone in it, so a
/// token cannot see the document before it, and no row is padded.
/// </summary>
public sealed class PackedLayout
{
    PackedLayout(Tensor positions, Tensor mask)
    {
        Positions = positions;
        Mask = mask;
    }

    /// <summary>[batch, seq] int64: 0 at each document's first token in the row, counting up within it.</summary>
    public Tensor Positions { get; }

    /// <summary>[batch, 1, seq, seq] bool, true where query i may attend to key j: same document and j ≤ i.</summary>
    public Tensor Mask { get; }

    /// <summary>
    /// The layout of rows [<paramref name="batch"/>, <paramref name="seq"/>] from whether each token starts a
    /// document (row-major); a row's first token always starts one.
    /// </summary>
    public static PackedLayout FromStarts(bool[] starts, long batch, long seq, Device device)
    {
        var documents = new long[batch * seq];
        var positions = new long[batch * seq];
        for (long r = 0; r < batch; r++)
        {
            long document = 0, position = 0;
            for (long t = 0; t < seq; t++)
            {
                long i = r * seq + t;
                if (t > 0 && starts[i]) { document++; position = 0; }
                documents[i] = document;
                positions[i] = position++;
            }
        }
        var shape = new long[] { batch, seq };
        using var scope = NewDisposeScope();
        var ids = tensor(documents, shape, device: device);
        var causal = ones(seq, seq, ScalarType.Bool, device: device).tril();
        var mask = ids.unsqueeze(2).eq(ids.unsqueeze(1)).logical_and(causal).unsqueeze(1);
        return new PackedLayout(tensor(positions, shape, device: device).MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }
}
