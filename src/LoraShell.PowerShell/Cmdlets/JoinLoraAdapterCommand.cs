using System.Management.Automation;
using LoraShell.Core.Lora;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Join, "LoraAdapter", SupportsShouldProcess = true)]
[OutputType(typeof(LoraModel))]
[CmdletHelp(
    "Combines several of a model's adapters into a new one (PEFT's add_weighted_adapter).",
    "Join-LoraAdapter adds adapter -Name made from the -Adapter list with one -Weight each, as PEFT's LoraModel.add_weighted_adapter does in its release (v0.20.0). Linear, Ties, DareLinear, DareTies and MagnitudePrune combine the A and B factors separately (A from sign(w·s)·√|w·s|·A, B from √|w·s|·B, where s is each adapter's scaling), so the result is not the sum of the deltas, and the adapters need one rank. Cat stacks the factors: rank Σr and a delta of exactly Σ w·s·B·A. Svd (the default, as in PEFT) and the *Svd types merge the deltas s·B·A with weights w·s — the scaling counted twice, as the release does — and keep the top -SvdRank singular directions (default the largest source rank), clamped at the -SvdClamp quantile if given. Ties, Dare* and MagnitudePrune keep a -Density share of each source's entries: TIES by magnitude with a sign elected per entry (-MajoritySignMethod Total or Frequency), DARE at random (-Seed) rescaled by 1/density. The new adapter has r = lora_alpha = its rank, the first adapter's other settings and every adapter's target modules. It is not made active: Set-LoraAdapter -Name does that. DoRA magnitudes are not combined (as in PEFT, with a warning). The model is passed through.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name a -InitMethod Random -Seed 1 |
        Add-LoraAdapter -Name b -InitMethod Random -Seed 2
    $m | Join-LoraAdapter -Name ab -Adapter a, b -Weight 0.7, 0.3 -CombinationType Cat |
        Set-LoraAdapter -Name ab -PassThru |
        Get-LoraAdapter -Name ab
    """,
    "Two adapters concatenated into one of rank 16 whose update is 0.7·ΔW_a + 0.3·ΔW_b, then made active.",
    Output = """
    Name       Rank Alpha Modules   Trainable Trainable% Merged Active Targets
    ----       ---- ----- -------   --------- ---------- ------ ------ -------
    ab           16    16      10      17,920     6.0567 False  True   q_proj,v_proj
    """)]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -Name a -InitMethod Random -Seed 1 |
        Add-LoraAdapter -Name b -InitMethod Random -Seed 2
    $m | Join-LoraAdapter -Name ties -Adapter a, b -Weight 1, 1 -CombinationType Ties -Density 0.5 |
        Join-LoraAdapter -Name svd4 -Adapter a, b -Weight 0.5, 0.5 -SvdRank 4 |
        Get-LoraAdapter
    """,
    "A TIES merge keeping half of each adapter's entries, and a rank-4 SVD of the averaged updates; neither is active until Set-LoraAdapter.")]
public sealed class JoinLoraAdapterCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model holding the adapters, usually piped.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Name of the new adapter.")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, HelpMessage = "The adapters to combine, in order (the first one's settings carry over).")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string[] Adapter { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, HelpMessage = "One weight per adapter.")]
    [ValidateNotNullOrEmpty]
    public double[] Weight { get; set; } = Array.Empty<double>();

    [Parameter(HelpMessage = "Svd (default, as in PEFT), Linear, Cat, Ties, TiesSvd, DareLinear, DareLinearSvd, DareTies, DareTiesSvd, MagnitudePrune or MagnitudePruneSvd.")]
    public CombinationType CombinationType { get; set; } = CombinationType.Svd;

    [Parameter(HelpMessage = "Share of each adapter's entries the pruning types keep, e.g. 0.5 (required for Ties, Dare* and MagnitudePrune*).")]
    public double? Density { get; set; }

    [Parameter(HelpMessage = "How TIES elects each entry's sign: Total (the sum of the values, default) or Frequency (the count of signs).")]
    public MajoritySign MajoritySignMethod { get; set; } = MajoritySign.Total;

    [Parameter(HelpMessage = "Rank of the *Svd types' result (default: the largest source rank).")]
    [ValidateRange(1, int.MaxValue)]
    public int? SvdRank { get; set; }

    [Parameter(HelpMessage = "Quantile in (0, 1] at which the *Svd types clamp the factors' entries (default: no clamp).")]
    public double? SvdClamp { get; set; }

    [Parameter(HelpMessage = "Seed of DARE's random masks (default 1).")]
    public long Seed { get; set; } = 1;

    protected override void Process()
    {
        var combination = new AdapterCombination
        {
            Adapters = Adapter, Weights = Weight, Type = CombinationType, Density = Density, MajoritySign = MajoritySignMethod,
            SvdRank = SvdRank, SvdClamp = SvdClamp, Seed = Seed,
        };
        string what = $"Add adapter '{Name}' = {CombinationType} of {string.Join(", ", Adapter.Zip(Weight, (a, w) => $"{w:G4}·{a}"))}{(Density is double d ? $", density {d:G4}" : "")}";
        if (!ShouldProcess(Model.Name, what)) return;
        lock (Model.Gate)
        {
            foreach (var warning in AdapterCombiner.Combine(Model.Loaded.Adapters, Name, combination)) WriteWarning(warning);
            var info = Model.Loaded.Adapters.Info(Name);
            WriteVerbose($"Adapter '{Name}': rank {info.Rank}, {info.ModulePaths.Count} modules, {info.TrainableParameters:N0} parameters; Set-LoraAdapter -Name {Name} makes it active.");
        }
        WriteObject(Model);
    }
}
