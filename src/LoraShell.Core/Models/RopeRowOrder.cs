using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// The two orders q and k rows come in. Meta's original Llama code, llama2.c and llama.cpp's llama
/// architecture rotate interleaved pairs (2i, 2i+1) of each head; Hugging Face rotates halves (i, i + d/2).
/// Converting between them permutes the rows of each head (weights [rows, in] and biases [rows] alike):
/// this is transformers' own conversion, <c>w.view(heads, d/2, 2, in).transpose(1, 2)</c>, and its inverse.
/// </summary>
public static class RopeRowOrder
{
    /// <summary>Interleaved-pair rows (llama2.c, llama.cpp) to HF's rotate-half rows.</summary>
    public static Tensor ToRotateHalf(Tensor w, int heads) => Permute(w, heads, interleavedToHalves: true);

    /// <summary>HF's rotate-half rows to interleaved-pair rows.</summary>
    public static Tensor ToInterleaved(Tensor w, int heads) => Permute(w, heads, interleavedToHalves: false);

    static Tensor Permute(Tensor w, int heads, bool interleavedToHalves)
    {
        long rows = w.shape[0], half = rows / heads / 2;
        var rest = w.shape.Skip(1);
        long[] view = interleavedToHalves
            ? new[] { heads, half, 2L }.Concat(rest).ToArray()
            : new[] { heads, 2L, half }.Concat(rest).ToArray();
        return w.reshape(view).transpose(1, 2).reshape(w.shape);
    }
}
