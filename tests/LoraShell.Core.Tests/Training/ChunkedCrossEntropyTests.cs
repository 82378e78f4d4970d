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

        var states = model.Decoder.Forward(ids);
        double sum = ChunkedCrossEntropy.SumAndBackward(states.reshape(-1, states.shape[^1]), model.Logits, targets, 7, 0.25, BatchSampler.IgnoreIndex);

        Assert.Equal(whole.item<float>(), sum, 3);
        foreach (var (name, p) in model.named_parameters())
            Assert.True(TensorAssert.MaxAbsDiff(expected[name], p.grad!) < 1e-5 * (1 + expected[name].abs().max().item<float>()), name);
    }

    [Fact]
    public void Rows_whose_logits_span_hundreds_give_the_loss_and_gradient_of_float64_cross_entropy()
    {
        // A random or early model's logits can span hundreds (the bench's synthetic model: a loss of 460), where
        // exp underflows; the clamped exp must not change the loss or the gradient.
        manual_seed(11);
        var weight = (randn(500, 32) * 6).requires_grad_(true);
        var hidden = (randn(9, 32) * 6).requires_grad_(true);
        var targets = randint(0, 500, new long[] { 9 });
        targets[2] = BatchSampler.IgnoreIndex;
        using (var range = nn.functional.linear(hidden, weight)) Assert.True((range.amax(new long[] { 1 }) - range.amin(new long[] { 1 })).min().item<float>() > 200);

        var w64 = weight.detach().to(ScalarType.Float64).requires_grad_(true);
        var h64 = hidden.detach().to(ScalarType.Float64).requires_grad_(true);
        var expected = nn.functional.cross_entropy(nn.functional.linear(h64, w64), targets, ignore_index: BatchSampler.IgnoreIndex, reduction: nn.Reduction.Sum);
        (expected * 0.5).backward();

        double sum = ChunkedCrossEntropy.SumAndBackward(hidden, h => nn.functional.linear(h, weight), targets, 4, 0.5, BatchSampler.IgnoreIndex);
        Assert.Equal(expected.item<double>(), sum, 1e-4 * Math.Abs(expected.item<double>()));
        Assert.True(TensorAssert.MaxAbsDiff(w64.grad!.to(ScalarType.Float32), weight.grad!) < 1e-4, "head gradient");
        Assert.True(TensorAssert.MaxAbsDiff(h64.grad!.to(ScalarType.Float32), hidden.grad!) < 1e-3, "hidden gradient");
        Assert.Equal(0, hidden.grad![2].abs().sum().item<float>()); // the ignored row gets nothing
    }

    [Fact]
    public void Bfloat16_logits_get_a_float32_loss_and_a_gradient_in_the_model_dtype()
    {
        manual_seed(5);
        var weight = (randn(300, 16) * 0.5).to(ScalarType.BFloat16).requires_grad_(true);
        var hidden = randn(10, 16).to(ScalarType.BFloat16).requires_grad_(true);
        var targets = randint(0, 300, new long[] { 10 });
        targets[2] = BatchSampler.IgnoreIndex;
        var reference = nn.functional.cross_entropy(nn.functional.linear(hidden, weight).to(ScalarType.Float32), targets, ignore_index: BatchSampler.IgnoreIndex, reduction: nn.Reduction.Sum);
        reference.backward();
        var expected = weight.grad!.to(ScalarType.Float32).clone();
        weight.grad!.zero_();

        double sum = ChunkedCrossEntropy.SumAndBackward(hidden, h => nn.functional.linear(h, weight), targets, 4, 1.0, BatchSampler.IgnoreIndex);

        Assert.Equal(reference.item<float>(), sum, 2);
        Assert.Equal(ScalarType.BFloat16, weight.grad!.dtype);
        Assert.True(TensorAssert.MaxAbsDiff(expected, weight.grad!.to(ScalarType.Float32)) < 2e-2 * (1 + expected.abs().max().item<float>()));
    }

    [Fact]
    public void A_head_whose_backward_needs_its_output_is_refused_not_silently_wrong()
    {
        // The logits buffer becomes its own gradient in place; a head that saved its output for backward
        // (one ending in tanh) must make autograd fail rather than differentiate the overwritten values.
        manual_seed(6);
        var weight = randn(50, 8).requires_grad_(true);
        var hidden = randn(6, 8).requires_grad_(true);
        var targets = randint(0, 50, new long[] { 6 });
        Assert.ThrowsAny<Exception>(() => ChunkedCrossEntropy.SumAndBackward(hidden, h => nn.functional.linear(h, weight).tanh(), targets, 3, 1.0, BatchSampler.IgnoreIndex));
    }

    [Fact]
    public void Chunk_size_bounds_the_logits_held_at_once()
    {
        Assert.Equal(262, ChunkedCrossEntropy.RowsPerChunk(32000));
        Assert.Equal(16384, ChunkedCrossEntropy.RowsPerChunk(512));
        Assert.Equal(64, ChunkedCrossEntropy.RowsPerChunk(151936));
    }
}
