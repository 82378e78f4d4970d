using System.Management.Automation;
using LoraShell.Core.Delta;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsLifecycle.Invoke, "SvdDelta", SupportsShouldProcess = true, DefaultParameterSetName = "Rank")]
[OutputType(typeof(SvdDeltaReport), typeof(SvdDeltaSummary))]
[CmdletHelp(
    "Compresses a full fine-tune into a low-rank PEFT LoRA adapter by truncated SVD of each weight delta.",
    "Invoke-SvdDelta pairs the tensors of two checkpoints by name (Hugging Face folders, sharded or not, or single .safetensors files, of any architecture), and for every targeted 2-D weight (default: all except embeddings and the output head) factorises ΔW = W_ft − W0 by truncated SVD, in float32 (or float64 with -Float64) whatever the stored dtype. The rank is fixed (-Rank), the smallest keeping a share of Σσ² (-EnergyThreshold), or the smallest under a relative Frobenius error (-MaxRelativeError), optionally capped by -MaxRank. -Method Exact uses LAPACK; Randomized uses Halko–Martinsson–Tropp (Gaussian sketch, power iterations) and is reproducible with -Seed. The output is a PEFT adapter with lora_B = U_r·diag(σ_r), lora_A = V_rᵀ and every module's scaling exactly 1 (alpha = r, with rank_pattern/alpha_pattern when ranks differ; -UniformRank pads to one rank for tools that ignore patterns), so Import-LoraAdapter + Merge-LoraWeights rebuilds W0 + ΔW_r, as PEFT would. Non-matrix deltas are reported and, with -IncludeNonMatrix, stored exactly via modules_to_save. Tensors stream from disk one at a time. One LoraShell.SvdDeltaReport per tensor is written as it finishes, then a LoraShell.SvdDeltaSummary.")]
[CmdletExample(
    """
    $ft = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Start-LoraTraining -Method Full -DataPath ../shared/data/tinyshakespeare/input.txt `
            -MaxSteps 10 -BatchSize 4 -SequenceLength 64 -OutputPath ./out/ft -Force
    Import-LoraModel ../shared/models/stories260K/stories260K.bin | Export-LoraModel ./out/base -Force | Out-Null
    Invoke-SvdDelta -BasePath ./out/base -FineTunedPath $ft.ModelPath `
        -OutputPath ./out/delta-r8 -Rank 8 -Force |
        Select-Object -Last 1
    """,
    "Fine-tunes every weight briefly, then stores the change as a rank-8 adapter. Invoke-SvdDelta writes one report per tensor, then a summary (shown here): the 35 matrices take about 4.9x less space than their dense deltas, and the worst one keeps about half of its delta's energy (relative error 0.71), since ten steps of full fine-tuning are far from low rank.")]
[CmdletExample(
    """
    Invoke-SvdDelta -BasePath ./out/base -FineTunedPath ./out/ft/model `
        -OutputPath ./out/delta-e90 -EnergyThreshold 0.9 -MaxRank 32 -Method Randomized `
        -Seed 1 -Force |
        Where-Object Status -eq Compressed |
        Sort-Object Rank |
        Format-Table Name, Rank, EnergyKept, RelativeError
    """,
    "Per-matrix ranks that keep 90% of each delta's energy, by randomized SVD.")]
public sealed class InvokeSvdDeltaCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, HelpMessage = "The base checkpoint: a Hugging Face folder (sharded or not) or a .safetensors file.")]
    [ValidateNotNullOrEmpty]
    public string BasePath { get; set; } = "";

    [Parameter(Mandatory = true, HelpMessage = "The fine-tuned checkpoint, in the same form as -BasePath.")]
    [ValidateNotNullOrEmpty]
    public string FineTunedPath { get; set; } = "";

    [Alias("Path")]
    [Parameter(Mandatory = true, HelpMessage = "The adapter folder to write.")]
    [ValidateNotNullOrEmpty]
    public string OutputPath { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "Rank", HelpMessage = "Fixed rank for every matrix; at most min(m, n) of each.")]
    [ValidateRange(1, int.MaxValue)]
    public int Rank { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Energy", HelpMessage = "Keep the smallest rank whose singular values hold at least this share of Σσ², in (0, 1].")]
    public double EnergyThreshold { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Error", HelpMessage = "Keep the smallest rank with ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F at most this, in (0, 1].")]
    public double MaxRelativeError { get; set; }

    [Parameter(HelpMessage = "Upper bound on any matrix's rank (and the randomized sketch size for -EnergyThreshold/-MaxRelativeError).")]
    [ValidateRange(1, int.MaxValue)]
    public int? MaxRank { get; set; }

    [Parameter(HelpMessage = "Exact (LAPACK SVD, default) or Randomized (Halko–Martinsson–Tropp).")]
    public SvdMethod Method { get; set; } = SvdMethod.Exact;

    [Parameter(HelpMessage = "Run the exact SVD in float64 instead of float32.")]
    public SwitchParameter Float64 { get; set; }

    [Parameter(HelpMessage = "Matrices to compress: module names, or one regular expression over module paths (default: every 2-D weight except embeddings and the output head).")]
    public string[]? TargetModules { get; set; }

    [Parameter(HelpMessage = "Compress the tensors both checkpoints share and report the others, instead of stopping.")]
    public SwitchParameter SkipMissing { get; set; }

    [Parameter(HelpMessage = "Store changed non-matrix tensors (norms, biases, excluded embeddings) exactly, via modules_to_save.")]
    public SwitchParameter IncludeNonMatrix { get; set; }

    [Parameter(HelpMessage = "Write one rank for every module (factors zero-padded to the largest rank, alpha = r), for consumers such as llama.cpp's converter that ignore rank_pattern.")]
    public SwitchParameter UniformRank { get; set; }

    [Parameter(HelpMessage = "Seed of the randomized method's sketch.")]
    public long Seed { get; set; }

    [Parameter(HelpMessage = "Replace -OutputPath if it exists.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        var policy = ParameterSetName switch
        {
            "Energy" => new RankPolicy { EnergyThreshold = EnergyThreshold, MaxRank = MaxRank },
            "Error" => new RankPolicy { MaxRelativeError = MaxRelativeError, MaxRank = MaxRank },
            _ => new RankPolicy { Rank = Rank, MaxRank = MaxRank },
        };
        policy.Validate();
        var options = new SvdDeltaOptions
        {
            BasePath = ResolveLiteral(BasePath), FineTunedPath = ResolveLiteral(FineTunedPath), OutputPath = ResolveLiteral(OutputPath),
            Policy = policy, Method = Method, Float64 = Float64, TargetModules = TargetModules,
            SkipMissing = SkipMissing, IncludeNonMatrix = IncludeNonMatrix, UniformRank = UniformRank, Overwrite = Force, Seed = Seed,
        };
        RefuseExisting(options.OutputPath, Force);
        if (!ShouldProcess(options.OutputPath, $"Write the SVD-compressed delta of '{options.FineTunedPath}' against '{options.BasePath}' as a PEFT adapter{Replacing(options.OutputPath, Core.Lora.PeftAdapterFiles.ConfigFile, Core.Lora.PeftAdapterFiles.WeightsFile)}")) return;

        var summary = RunWithProgress("Invoke-SvdDelta", (report, emit, cancel) =>
            SvdDeltaCompressor.Run(options, r => emit(new SvdDeltaReport(r)),
                (done, total, name) => report(name.Length == 0 ? "done" : $"{done + 1}/{total}: {name}", total == 0 ? 1 : (double)done / total), cancel));
        foreach (var w in summary.Warnings) WriteWarning(w);
        WriteObject(new SvdDeltaSummary(summary));
    }
}
