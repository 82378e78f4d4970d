namespace LoraShell.Core.Lora;

/// <summary>What an adapter is, for listings (Get-LoraAdapter).</summary>
public sealed record AdapterInfo(
    string Name,
    int Rank,
    double Alpha,
    double Scaling,
    IReadOnlyList<string> TargetModules,
    IReadOnlyList<string> ModulePaths,
    long TrainableParameters,
    long TotalParameters,
    bool Merged,
    bool Active,
    LoraConfig Config)
{
    /// <summary>How many embedding rows the adapter trains (trainable_token_indices); 0 when none.</summary>
    public int TrainableTokens { get; init; }
}

/// <summary>One module an adapter would wrap, for dry runs (Add-LoraAdapter -WhatIf).</summary>
public sealed record AdapterPlanItem(string ModulePath, long InFeatures, long OutFeatures, int Rank, double Alpha, double Scaling)
{
    public long Parameters => Rank * (InFeatures + OutFeatures);
}

/// <summary>PEFT's print_trainable_parameters numbers.</summary>
public sealed record TrainableSummary(long Trainable, long All)
{
    public double Percent => All == 0 ? 0 : 100.0 * Trainable / All;
    public override string ToString()
        => $"trainable params: {Trainable:N0} || all params: {All:N0} || trainable%: {Percent.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}";
}
