namespace LoraShell.Core.Delta;

/// <summary>How many singular triplets each matrix keeps.</summary>
public sealed record RankPolicy
{
    /// <summary>Fixed rank (capped by <see cref="MaxRank"/>).</summary>
    public int? Rank { get; init; }
    /// <summary>Smallest rank keeping at least this share of Σσ², in (0, 1].</summary>
    public double? EnergyThreshold { get; init; }
    /// <summary>Smallest rank whose relative Frobenius error ‖ΔW − ΔW_r‖/‖ΔW‖ is at most this, in (0, 1].</summary>
    public double? MaxRelativeError { get; init; }
    /// <summary>Upper bound on any matrix's rank (also the sketch size of the randomized method for the adaptive policies).</summary>
    public int? MaxRank { get; init; }

    public void Validate()
    {
        int given = (Rank is null ? 0 : 1) + (EnergyThreshold is null ? 0 : 1) + (MaxRelativeError is null ? 0 : 1);
        if (given != 1) throw LoraShellException.InvalidArgument("RankPolicyRequired", "Give exactly one of -Rank, -EnergyThreshold or -MaxRelativeError.");
        if (Rank is < 1) throw LoraShellException.InvalidArgument("InvalidRank", $"Rank must be at least 1 (got {Rank}).", Rank);
        if (EnergyThreshold is double e && !(e > 0 && e <= 1)) throw LoraShellException.InvalidArgument("InvalidThreshold", $"EnergyThreshold must be in (0, 1] (got {e}).", e);
        if (MaxRelativeError is double x && !(x > 0 && x <= 1)) throw LoraShellException.InvalidArgument("InvalidThreshold", $"MaxRelativeError must be in (0, 1] (got {x}).", x);
        if (MaxRank is < 1) throw LoraShellException.InvalidArgument("InvalidRank", $"MaxRank must be at least 1 (got {MaxRank}).", MaxRank);
    }

    /// <summary>
    /// The rank for a matrix with the given (descending) singular values and squared Frobenius norm.
    /// With a partial spectrum (randomized), the tail energy is the norm minus the kept energy.
    /// </summary>
    public int Choose(double[] singular, double frobeniusSquared, long maxPossible)
    {
        int cap = (int)Math.Min(maxPossible, MaxRank ?? int.MaxValue);
        if (frobeniusSquared <= 0) return 0;
        if (Rank is int r) return Math.Min(r, cap);
        double kept = 0;
        for (int i = 0; i < Math.Min(singular.Length, cap); i++)
        {
            kept += singular[i] * singular[i];
            double energy = kept / frobeniusSquared;
            double error = Math.Sqrt(Math.Max(0, frobeniusSquared - kept) / frobeniusSquared);
            if (EnergyThreshold is double t && energy >= t - 1e-12) return i + 1;
            if (MaxRelativeError is double x && error <= x + 1e-12) return i + 1;
        }
        return Math.Min(singular.Length, cap);
    }
}
