using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// AdamW written out (the same update as torch.optim.AdamW): decoupled weight decay, bias-corrected
/// moments. Its state is plain named tensors, so checkpoints save and restore it exactly. Parameters
/// with fewer than two dimensions (norms, biases) get no weight decay. A parameter may learn at a
/// multiple of the step's learning rate (its group's lr in torch, as LoRA+ sets it), decay included.
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly List<(string Name, Parameter Param, Tensor ExpAvg, Tensor ExpAvgSq, bool Decay, double LrScale)> _slots = new();
    readonly double _beta1, _beta2, _eps, _weightDecay;

    /// <param name="learningRateScale">per parameter (by name), the multiple of the learning rate it learns at; default 1</param>
    public AdamW(IEnumerable<(string Name, Parameter Param)> parameters, double beta1, double beta2, double eps, double weightDecay,
        Func<string, Parameter, double>? learningRateScale = null)
    {
        _beta1 = beta1; _beta2 = beta2; _eps = eps; _weightDecay = weightDecay;
        foreach (var (name, p) in parameters)
            _slots.Add((name, p, zeros_like(p, dtype: ScalarType.Float32).DetachFromDisposeScope(), zeros_like(p, dtype: ScalarType.Float32).DetachFromDisposeScope(), p.dim() >= 2,
                learningRateScale?.Invoke(name, p) ?? 1.0));
    }

    public int StepCount { get; private set; }
    public IEnumerable<Parameter> Parameters => _slots.Select(s => s.Param);

    public void Step(double learningRate)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(_beta1, StepCount);
        double bc2 = 1 - Math.Pow(_beta2, StepCount);
        using var _ = no_grad();
        // Every read of p.grad makes a new handle that keeps the gradient alive until it is disposed (or,
        // if no scope owns it, until the GC finalizes it - for full fine-tuning, hundreds of MiB), so all
        // reads happen inside a dispose scope.
        using var stepScope = NewDisposeScope();
        foreach (var (_, p, m, v, decay, scale) in _slots)
        {
            using var scope = NewDisposeScope();
            if (p.grad is null) continue;
            double lr = learningRate * scale;
            var g = p.grad.to(ScalarType.Float32);
            if (decay && _weightDecay > 0) p.mul_(1 - lr * _weightDecay);
            // Passes over the state are the optimizer's whole cost (Full: six per weight per step), so m moves in
            // one (lerp: m + (1−β1)(g − m)) and the bias corrections ride on the scalars:
            // lr/bc1 · m / (√v/√bc2 + ε) = (lr·√bc2/bc1) · m / (√v + ε·√bc2).
            m.lerp_(g, 1 - _beta1);
            v.mul_(_beta2).addcmul_(g, g, value: 1 - _beta2);
            var denom = v.sqrt().add_(_eps * Math.Sqrt(bc2));
            double stepSize = lr * Math.Sqrt(bc2) / bc1;
            if (p.dtype == ScalarType.Float32) p.addcdiv_(m, denom, value: -stepSize);
            else p.copy_((p.to(ScalarType.Float32) - stepSize * m / denom).to(p.dtype));
        }
    }

    public void ZeroGrad()
    {
        using var scope = NewDisposeScope();
        foreach (var s in _slots)
            if (s.Param.grad is Tensor g) { g.Dispose(); s.Param.grad = null; }
    }

    /// <summary>Moments by name (<c>NAME.exp_avg</c>, <c>NAME.exp_avg_sq</c>) for a checkpoint.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State()
        => _slots.SelectMany(s => new[] { KeyValuePair.Create(s.Name + ".exp_avg", s.ExpAvg), KeyValuePair.Create(s.Name + ".exp_avg_sq", s.ExpAvgSq) });

    public void LoadState(Func<string, Tensor> read, int stepCount)
    {
        using var _ = no_grad();
        foreach (var (name, _, m, v, _, _) in _slots)
        {
            using (var t = read(name + ".exp_avg")) m.copy_(t);
            using (var t = read(name + ".exp_avg_sq")) v.copy_(t);
        }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (var s in _slots) { s.ExpAvg.Dispose(); s.ExpAvgSq.Dispose(); }
        _slots.Clear();
    }
}
