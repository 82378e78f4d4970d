using static TorchSharp.torch;

namespace LoraShell.Core.Lora;

/// <summary>PEFT's <c>combination_type</c> values of <c>add_weighted_adapter</c>, in PowerShell's casing.</summary>
public enum CombinationType
{
    Svd, Linear, Cat, Ties, TiesSvd, DareLinear, DareLinearSvd, DareTies, DareTiesSvd, MagnitudePrune, MagnitudePruneSvd,
}

/// <summary>How TIES elects each entry's sign: by the sum of the values (PEFT's "total") or by the count of signs ("frequency").</summary>
public enum MajoritySign { Total, Frequency }

/// <summary>
/// A new adapter from several (PEFT's <c>LoraModel.add_weighted_adapter</c>, as released in v0.20.0), with
/// gᵢ = wᵢ·sᵢ for source i's weight and its scaling on the module:
/// <list type="bullet">
/// <item>Linear, Ties, DareLinear, DareTies, MagnitudePrune: A and B are combined separately (not the deltas):
/// A from sign(gᵢ)·√|gᵢ|·Aᵢ, B from √|gᵢ|·Bᵢ, so Linear gives (Σ√|gᵢ|Bᵢ)(Σ sign(gᵢ)√|gᵢ|Aᵢ) with cross terms;
/// the sources need one rank, which the new adapter keeps.</item>
/// <item>Cat: A stacks gᵢ·Aᵢ, B puts the Bᵢ side by side; rank Σrᵢ, and the delta is exactly Σ wᵢ·sᵢ·BᵢAᵢ.</item>
/// <item>Svd (and the *Svd variants): D = merge of the deltas sᵢBᵢAᵢ with weights wᵢ·sᵢ — the scaling counted
/// twice, as the release does (a later PEFT change drops the second factor) — then the truncated SVD of D:
/// B = U·diag(S), A = Vh, at rank SvdRank (default the largest source rank), optionally clamped to the
/// SvdClamp quantile of their entries.</item>
/// </list>
/// The new adapter has r = lora_alpha = its rank (scaling 1; √r with rsLoRA, as released), adapter 1's other
/// settings, the union of the target modules, and is not made active. DoRA sources' magnitudes are ignored,
/// as in PEFT: a DoRA result starts from ‖W0‖.
/// </summary>
public sealed record AdapterCombination
{
    public required IReadOnlyList<string> Adapters { get; init; }
    public required IReadOnlyList<double> Weights { get; init; }
    public CombinationType Type { get; init; } = CombinationType.Svd;
    /// <summary>Share of entries kept by the pruning types (TIES, DARE, magnitude pruning).</summary>
    public double? Density { get; init; }
    public MajoritySign MajoritySign { get; init; } = MajoritySign.Total;
    public int? SvdRank { get; init; }
    /// <summary>Quantile in (0, 1] at which the SVD factors' entries are clamped.</summary>
    public double? SvdClamp { get; init; }
    /// <summary>Seeds DARE's random masks.</summary>
    public long Seed { get; init; } = 1;

    public bool IsSvd => Type is CombinationType.Svd or CombinationType.TiesSvd or CombinationType.DareLinearSvd or CombinationType.DareTiesSvd or CombinationType.MagnitudePruneSvd;
    public bool Prunes => Type is not (CombinationType.Svd or CombinationType.Linear or CombinationType.Cat);
    public bool IsDare => Type is CombinationType.DareLinear or CombinationType.DareLinearSvd or CombinationType.DareTies or CombinationType.DareTiesSvd;

    /// <summary>PEFT's spelling of the type (adapter_config, error messages).</summary>
    public string PeftName => string.Concat(Type.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
