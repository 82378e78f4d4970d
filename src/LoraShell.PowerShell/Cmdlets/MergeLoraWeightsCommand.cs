using System.Management.Automation;
using LoraShell.Core.Lora;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Merge, "LoraWeights", SupportsShouldProcess = true, DefaultParameterSetName = "Merge")]
[OutputType(typeof(LoraModel), typeof(DirectoryInfo))]
[CmdletHelp(
    "Folds LoRA adapters into the base weights (W0 += scaling·B·A) for zero-cost inference, or takes them back out.",
    "Merge-LoraWeights adds each named adapter (default: the active ones) into its layers' base weights, computing in float32 whatever the weights' dtype, and refuses to merge if the result would contain NaN or Inf. Merging an adapter that is merged already is a no-op with a warning. After every merge it checks parity: the logits of a fixed sample before and after, reported with -Verbose, kept in the model's LastMergeParity, and a warning if they differ by more than 1e-3 relative. -Unmerge subtracts every merged adapter again. -Unload then drops every adapter and keeps the merged weights, a plain model as PEFT's merge_and_unload gives (adapters not merged are dropped, with a warning). -OutputPath then writes the merged model as a Hugging Face folder (plain weights, no adapter) that Import-LoraModel and transformers load; it outputs the folder. Supports -WhatIf and -Confirm.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random |
        Merge-LoraWeights -Verbose |
        Get-LoraAdapter
    """,
    "Merges the active adapter; -Verbose prints the logit parity check; the adapter shows Merged = True.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random |
        Merge-LoraWeights -OutputPath ./out/merged -Force |
        Import-LoraModel
    """,
    "Writes the merged model as a Hugging Face folder and loads it back as a plain model.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter -InitMethod Random -Seed 1 |
        Merge-LoraWeights
    $m | Get-LoraAdapter | Format-Table Name, Merged, Active
    $m | Merge-LoraWeights -Unmerge | Get-LoraAdapter | Format-Table Name, Merged, Active
    """,
    "Merges, then unmerges: the base weights are restored and the adapter is separate again.",
    Output = """
    Name    Merged Active
    ----    ------ ------
    default   True   True


    Name    Merged Active
    ----    ------ ------
    default  False   True
    """)]
public sealed class MergeLoraWeightsCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model whose adapters to merge.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Position = 0, ParameterSetName = "Merge", HelpMessage = "Adapter(s) to merge. Default: the active adapters.")]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string[]? Name { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Unmerge", HelpMessage = "Subtract every merged adapter from the base weights again.")]
    public SwitchParameter Unmerge { get; set; }

    [Alias("Path")]
    [Parameter(ParameterSetName = "Merge", HelpMessage = "After merging, write the merged model as a Hugging Face folder here and output the folder.")]
    public string? OutputPath { get; set; }

    [Parameter(ParameterSetName = "Merge", HelpMessage = "Replace -OutputPath if it exists.")]
    public SwitchParameter Force { get; set; }

    [Parameter(ParameterSetName = "Merge", HelpMessage = "After merging, drop every adapter and keep the merged weights: a plain model, as PEFT's merge_and_unload gives. Adapters that were not merged are dropped (with a warning).")]
    public SwitchParameter Unload { get; set; }

    protected override void Process()
    {
        var set = Model.Loaded.Adapters;
        lock (Model.Gate)
        {
            if (Unmerge)
            {
                if (set.MergedNames.Count == 0) { WriteWarning($"Model '{Model.Name}' has no merged adapter."); WriteObject(Model); return; }
                if (ShouldProcess(Model.Name, $"Unmerge adapter(s) {string.Join(", ", set.MergedNames)}")) set.Unmerge();
                WriteObject(Model);
                return;
            }

            string? target = OutputPath is null ? null : ResolveLiteral(OutputPath);
            if (target is not null) RefuseExisting(target, Force);
            var (toMerge, already) = set.MergeTargets(Name);
            foreach (var n in already) WriteWarning($"Adapter '{n}' is merged already; merging it again would add it twice, so it was skipped.");
            if (toMerge.Count > 0 && ShouldProcess(Model.Name, $"Merge adapter(s) {string.Join(", ", toMerge)} into the base weights"))
            {
                if (Model.Quantization != "None")
                    WriteWarning($"The base is quantized ({Model.Quantization}): the merged layers become dense {Model.DType} weights, the dequantized base plus the adapter's delta, so they keep the base's rounding and take {Model.DType}'s memory. PEFT warns about the same rounding; to merge into the original weights, import the base without -Quantization and add the adapter there.");
                var p = Model.LastMergeParity = MergeParityCheck.Merge(set, toMerge);
                WriteVerbose($"Merge parity on {p.SampleTokens} tokens: max |Δlogit| {p.MaxAbsDifference:E2}, mean {p.MeanAbsDifference:E2} (largest logit {p.MaxAbsLogit:F2}).");
                if (p.Relative > MergeParity.WarningThreshold) WriteWarning($"Merged logits differ from unmerged ones by {p.Relative:P3} of the largest logit; check the adapter.");
            }

            if (Unload && ShouldProcess(Model.Name, "Drop the adapters and keep the merged weights (merge_and_unload)"))
            {
                var dropped = set.Unload();
                foreach (var n in dropped) WriteWarning($"Adapter '{n}' was not merged; -Unload dropped it.");
                WriteVerbose($"Model '{Model.Name}' is a plain model now: the merged weights stay, no adapter remains.");
            }

            if (target is null) { WriteObject(Model); return; }
            if (!ShouldProcess(target, "Write the merged model as a Hugging Face folder")) return;
            WriteItem(Model.Loaded.SaveHuggingFace(target, Force));
        }
    }
}
