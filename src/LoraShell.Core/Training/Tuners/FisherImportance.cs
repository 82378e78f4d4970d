using LoraShell.Core.Models;
using static TorchSharp.torch;

namespace LoraShell.Core.Training.Tuners;

/// <summary>
/// Fisher information of each backbone weight, estimated as Σ (w · ∂L/∂w)² over a few training
/// batches: the importance used to prune the backbone into a side network's initial weights.
/// Owns its score tensors; dispose it once the side network is initialised.
/// </summary>
internal sealed class FisherImportance : IDisposable
{
    readonly Dictionary<string, Tensor> _scores;

    FisherImportance(Dictionary<string, Tensor> scores) => _scores = scores;

    /// <summary>Importance of the named weight (its shape).</summary>
    public Tensor Of(string name, Tensor _) => _scores[name];

    public static FisherImportance Estimate(CausalLM model, TokenStream data, TrainingOptions o)
    {
        // Windows as training reads them: with -Packing Documents, whole documents, each read alone.
        var sampler = new BatchSampler(data, o.SequenceLength, o.Seed + 1, o.Packing);
        return Estimate(model, o.FisherBatches, b =>
        {
            var (inputs, targets, packed) = sampler.Batch((long)b * o.BatchSize, o.BatchSize, model.Device);
            var logits = model.Forward(inputs, packed);
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), targets.reshape(-1), ignore_index: BatchSampler.IgnoreIndex);
        });
    }

    /// <summary>Σ (w · ∂L/∂w)² over <paramref name="batches"/> losses of <paramref name="model"/> (<paramref name="loss"/> of batch i).</summary>
    public static FisherImportance Estimate(nn.Module model, int batches, Func<int, Tensor> loss)
    {
        var named = model.named_parameters().ToList();
        var scores = named.ToDictionary(p => p.name, p => zeros_like(p.parameter, dtype: ScalarType.Float32).DetachFromDisposeScope());
        var importance = new FisherImportance(scores);
        foreach (var (_, p) in named) p.requires_grad = true;
        try
        {
            for (int b = 0; b < batches; b++)
            {
                using var scope = NewDisposeScope();
                loss(b).backward();
                using (no_grad())
                    foreach (var (name, p) in named)
                        if (p.grad is Tensor g) { scores[name].add_((p.to(ScalarType.Float32) * g.to(ScalarType.Float32)).pow(2)); g.zero_(); }
            }
            return importance;
        }
        catch { importance.Dispose(); throw; }
        finally
        {
            foreach (var (_, p) in named) { p.requires_grad = false; p.grad?.Dispose(); p.grad = null; }
        }
    }

    public void Dispose()
    {
        foreach (var t in _scores.Values) t.Dispose();
        _scores.Clear();
    }
}
