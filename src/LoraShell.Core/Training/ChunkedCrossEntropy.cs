using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// Token cross-entropy and its backward pass computed a chunk of rows at a time, so at most
/// <c>chunk × vocab</c> logits exist at once instead of the whole batch's. The final hidden states are
/// cut from the graph, each chunk's loss back-propagates into them (and into the LM head), and one
/// backward from the hidden states finishes the step: the same gradients as one big cross-entropy,
/// without the [tokens, vocab] buffers that dominate small models' training memory.
/// </summary>
/// <remarks>
/// The gradient of Σ cross-entropy with respect to the logits is softmax − one-hot, so each chunk's
/// logits buffer is turned into its own gradient in place (shift by the row max, exp, normalise,
/// subtract 1 at the target) and handed to the head's backward. Autograd's cross_entropy would keep
/// the logits, their log-softmax and two gradient buffers alive together: four [chunk, vocab] tensors
/// against one here, and fewer passes over them. The head's backward never reads its own output for a
/// linear head; if a head did (one ending in a tanh, say), the in-place change would bump the version
/// counter it shares with the output and autograd would refuse rather than compute a wrong gradient.
/// </remarks>
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
            var chunkLogits = logits(cut.narrow(0, start, n));
            Tensor gradient;
            using (no_grad())
            {
                var chunkTargets = targets.narrow(0, start, n);
                var ignored = chunkTargets.eq(ignoreIndex).unsqueeze(1);
                var index = chunkTargets.unsqueeze(1).masked_fill(ignored, 0);
                // float32 whatever the model's dtype: a bf16 softmax over 32k entries loses the small probabilities.
                gradient = chunkLogits.dtype == ScalarType.Float32 ? chunkLogits.detach() : chunkLogits.to(ScalarType.Float32);
                var picked = gradient.gather(1, index);
                var max = gradient.amax(new long[] { 1 }, keepdim: true);
                // Clamped so no exp underflows: libtorch's exp goes to MKL's vector math, whose underflow path
                // (an error status per element, a slow scalar fallback) took 9% of a 16 x 256 step when a row's
                // logits spanned more than 87 (as a random or early model's do); e^-87 is still a normal float and
                // moves the sum and the gradient by under 1e-33 of their size.
                gradient.sub_(max).clamp_min_(-87).exp_();
                var total = gradient.sum(1, keepdim: true);
                // loss per row = logsumexp − picked logit = max + log Σ exp(logit − max) − picked
                sum += (max + total.log() - picked).masked_fill(ignored, 0).sum().item<float>();
                // scale·(softmax − one-hot), ignored rows zero, in one pass over the buffer: a per-row factor
                // scale/Σ (0 for an ignored row) and −scale (or 0) added at the target.
                var kept = ignored.logical_not().to(ScalarType.Float32);
                gradient.mul_(kept.mul(scale).div_(total)).scatter_add_(1, index, kept.mul(-scale));
            }
            chunkLogits.backward(new[] { gradient.dtype == chunkLogits.dtype ? gradient : gradient.to(chunkLogits.dtype) });
        }
        if (hidden.requires_grad) torch.autograd.backward(new[] { hidden }, new[] { cut.grad! });
        return sum;
    }
}
