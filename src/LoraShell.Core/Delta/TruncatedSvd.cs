using static TorchSharp.torch;

namespace LoraShell.Core.Delta;

/// <summary>A truncated factorisation M ≈ U·diag(S)·Vh, plus what is known of the full spectrum.</summary>
public sealed class SvdFactors : IDisposable
{
    public SvdFactors(Tensor u, Tensor s, Tensor vh, Tensor? fullSpectrum)
    {
        U = u; S = s; Vh = vh; FullSpectrum = fullSpectrum;
    }
    /// <summary>[m, k]</summary>
    public Tensor U { get; }
    /// <summary>[k], descending</summary>
    public Tensor S { get; }
    /// <summary>[k, n]</summary>
    public Tensor Vh { get; }
    /// <summary>Every singular value (exact method only), for the Eckart–Young optimum.</summary>
    public Tensor? FullSpectrum { get; }
    public void Dispose() { U.Dispose(); S.Dispose(); Vh.Dispose(); FullSpectrum?.Dispose(); }
}

/// <summary>Exact (LAPACK) and randomized (Halko–Martinsson–Tropp) truncated SVD.</summary>
public static class TruncatedSvd
{
    /// <summary>Thin SVD of the whole matrix; keeps the top <paramref name="keep"/> triplets and the full spectrum.</summary>
    public static SvdFactors Exact(Tensor m, int keep, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var (u, s, vh) = linalg.svd(m.to(dtype), fullMatrices: false);
        int k = Math.Min(keep, (int)s.shape[0]);
        return new SvdFactors(
            u.narrow(1, 0, k).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope(),
            s.narrow(0, 0, k).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope(),
            vh.narrow(0, 0, k).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope(),
            s.to(ScalarType.Float64).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Randomized SVD: a Gaussian sketch of k = rank + oversample columns, <paramref name="powerIterations"/>
    /// rounds of power iteration re-orthonormalised by QR each half-step, then an exact SVD of the small
    /// projected matrix. Reproducible for a given <paramref name="seed"/>.
    /// </summary>
    public static SvdFactors Randomized(Tensor matrix, int rank, int oversample = 10, int powerIterations = 2, long seed = 0)
    {
        using var scope = NewDisposeScope();
        var a = matrix.to(ScalarType.Float32);
        long m = a.shape[0], n = a.shape[1];
        int k = (int)Math.Min(rank + oversample, Math.Min(m, n));
        using var generator = new Generator((ulong)seed, a.device);
        var omega = randn(new long[] { n, k }, generator: generator, device: a.device);
        var (q, _) = linalg.qr(a.matmul(omega), linalg.QRMode.Reduced);
        for (int i = 0; i < powerIterations; i++)
        {
            (q, _) = linalg.qr(a.t().matmul(q), linalg.QRMode.Reduced);
            (q, _) = linalg.qr(a.matmul(q), linalg.QRMode.Reduced);
        }
        var b = q.t().matmul(a);                       // [k, n]
        var (ub, s, vh) = linalg.svd(b, fullMatrices: false);
        int keep = Math.Min(rank, (int)s.shape[0]);
        var u = q.matmul(ub);
        return new SvdFactors(
            u.narrow(1, 0, keep).contiguous().MoveToOuterDisposeScope(),
            s.narrow(0, 0, keep).contiguous().MoveToOuterDisposeScope(),
            vh.narrow(0, 0, keep).contiguous().MoveToOuterDisposeScope(),
            null);
    }
}
