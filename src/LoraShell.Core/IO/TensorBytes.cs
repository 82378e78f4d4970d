using static TorchSharp.torch;

namespace LoraShell.Core.IO;

/// <summary>
/// Moves a CPU tensor's bytes between native memory and a stream in 1 MiB chunks, with no managed
/// buffer the size of the tensor (those land on the large-object heap and keep RSS high until a GC).
/// </summary>
public static class TensorBytes
{
    const int Chunk = 1 << 20;

    public static void ReadInto(Tensor tensor, Stream stream, long byteLength)
    {
        if (byteLength > int.MaxValue) { tensor.ReadBytesFromStream(stream); return; }
        var span = tensor.bytes; // the tensor's own memory (contiguous CPU tensor)
        int done = 0;
        while (done < span.Length)
        {
            int n = stream.Read(span.Slice(done, Math.Min(Chunk, span.Length - done)));
            if (n == 0) throw new EndOfStreamException();
            done += n;
        }
    }

    public static void Write(Tensor contiguousCpu, Stream stream)
    {
        long length = contiguousCpu.numel() * contiguousCpu.element_size();
        if (length > int.MaxValue) { contiguousCpu.WriteBytesToStream(stream); return; }
        var span = contiguousCpu.bytes;
        for (int done = 0; done < span.Length; done += Chunk) stream.Write(span.Slice(done, Math.Min(Chunk, span.Length - done)));
    }
}
