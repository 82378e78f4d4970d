using LoraShell.Core.Training;
using Xunit;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class ChunkedCrossEntropyTests
{
    [Fact]
    public void Chunks_give_the_loss_and_gradients_of_one_cross_entropy()
    {
        using var loaded = SharedData.LoadStories();
        var model = loaded.Model;
        foreach (var p in model.parameters()) p.requires_grad = true;
        manual_seed(3);
        var ids = randint(3, 512, new long[] { 2, 37 });
        var targets = randint(3, 512, new long[] { 74 });
        targets[5] = BatchSampler.IgnoreIndex;

        var logits = model.forward(ids).reshape(-1, 512);
        var whole = nn.functional.cross_entropy(logits, targets, ignore_index: BatchSampler.IgnoreIndex, reduction: nn.Reduction.Sum);
        (whole * 0.25).backward();
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        foreach (var p in model.parameters()) { p.grad!.Dispose(); p.grad = null; }

        var states = model.model.Forward(ids);
        double sum = ChunkedCrossEntropy.SumAndBackward(states.reshape(-1, states.shape[^1]), model.Logits, targets, 7, 0.25, BatchSampler.IgnoreIndex);

        Assert.Equal(whole.item<float>(), sum, 3);
        foreach (var (name, p) in model.named_parameters())
            Assert.True(TensorAssert.MaxAbsDiff(expected[name], p.grad!) < 1e-5 * (1 + expected[name].abs().max().item<float>()), name);
    }

    [Fact]
    public void Chunk_size_bounds_the_logits_held_at_once()
    {
        Assert.Equal(262, ChunkedCrossEntropy.RowsPerChunk(32000));
        Assert.Equal(16384, ChunkedCrossEntropy.RowsPerChunk(512));
        Assert.Equal(64, ChunkedCrossEntropy.RowsPerChunk(151936));
    }
}
