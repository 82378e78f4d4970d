using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// Token cross-entropy and its backward pass computed a chunk of rows at a time, so at most
/// <c>chunk × vocab</c> logits (with their log-softmax and gradient) exist at once instead of the whole
/// batch's. The final hidden states are cut from the graph, each chunk's loss back-propagates into
/// them (and into the LM head), and one backward from the hidden states finishes the step: the same
/// gradients as one big cross-entropy, without the [tokens, vocab] buffers that dominate small models'
/// training memory.
/// </summary>
public static class ChunkedCrossEntropy
{
    /// <summary>Rows per chunk: about 8M logits (32 MiB in float32) at a time, never fewer than 64 rows.</summary>
    public static int RowsPerChunk(long vocab) => (int)Math.Max(64, (1L << 23) / Math.Max(1, vocab));

    /// <summary>
    /// Runs backward of <paramref name="scale"/> × Σ cross-entropy(logits(hidden[i]), targets[i]) over rows
    /// whose target is not <paramref name="ignoreIndex"/>; returns the unscaled sum.
    /// </summary>
    /// <param name="hidden">Final hidden states [rows, hidden], attached to the model's graph.</param>
    /// <param name="logits">The LM head: [n, hidden] → [n, vocab].</param>
    public static double SumAndBackward(Tensor hidden, Func<Tensor, Tensor> logits, Tensor targets, int rowsPerChunk, double scale, long ignoreIndex)
    {
        long rows = hidden.shape[0];
        using var cut = hidden.detach().requires_grad_(true);
        double sum = 0;
        for (long start = 0; start < rows; start += rowsPerChunk)
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(rowsPerChunk, rows - start);
            var chunkLogits = logits(cut.narrow(0, start, n)).to(ScalarType.Float32);
            var loss = nn.functional.cross_entropy(chunkLogits, targets.narrow(0, start, n), ignore_index: ignoreIndex, reduction: nn.Reduction.Sum);
            chunkLogits.Dispose();
            (loss * scale).backward();
            sum += loss.item<float>();
        }
        if (hidden.requires_grad) torch.autograd.backward(new[] { hidden }, new[] { cut.grad! });
        return sum;
    }
}
