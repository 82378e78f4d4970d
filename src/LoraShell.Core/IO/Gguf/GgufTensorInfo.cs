namespace LoraShell.Core.IO.Gguf;

/// <summary>
/// One tensor of a GGUF file. <see cref="Dims"/> are ggml's <c>ne</c>, innermost first (a PyTorch
/// [out, in] matrix is ne [in, out]); <see cref="Shape"/> is the PyTorch order. <see cref="Offset"/> is
/// relative to the start of the data section.
/// </summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, GgmlType Type, long Offset)
{
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => GgmlTypes.RowBytes(Type, Dims[0]) * (ElementCount / Math.Max(1, Dims[0]));
    public long[] Shape => Dims.Reverse().ToArray();
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}
