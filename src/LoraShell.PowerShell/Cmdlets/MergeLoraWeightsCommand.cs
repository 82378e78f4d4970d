using System.Management.Automation;
using static TorchSharp.torch;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Merge, "LoraWeights", SupportsShouldProcess = true, DefaultParameterSetName = "Merge")]
[OutputType(typeof(LoraModel), typeof(DirectoryInfo))]
[CmdletHelp(
    "Folds LoRA adapters into the base weights (W0 += scaling·B·A) for zero-cost inference, or takes them back out.",
    "Merge-LoraWeights adds each named adapter (default: the active ones) into its layers' base weights, computing in float32 whatever the weights' dtype, and refuses to merge if the result would contain NaN or Inf. Merging an adapter that is merged already is a no-op with a warning. After every merge it checks parity: the logits of a fixed sample before and after, reported with -Verbose, kept in the model's LastMergeParity, and a warning if they differ by more than 1e-3 relative. -Unmerge subtracts every merged adapter again. -OutputPath then writes the merged model as a Hugging Face folder (plain weights, no adapter) that Import-LoraModel and transformers load; it outputs the folder. Supports -WhatIf and -Confirm.")]
[CmdletExample(
    "Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -InitMethod Random | Merge-LoraWeights -Verbose | Get-LoraAdapter",
    "Merges the active adapter; -Verbose prints the logit parity check; the adapter shows Merged = True.")]
[CmdletExample(
    "Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -InitMethod Random | Merge-LoraWeights -OutputPath ./out/merged -Force | Import-LoraModel",
    "Writes the merged model as a Hugging Face folder and loads it back as a plain model.")]
[CmdletExample(
    "$m = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter -InitMethod Random | Merge-LoraWeights; $m | Merge-LoraWeights -Unmerge | Get-LoraAdapter",
    "Takes the merged adapter back out of the base weights.")]
public sealed class MergeLoraWeightsCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model whose adapters to merge.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Position = 0, ParameterSetName = "Merge", HelpMessage = "Adapter(s) to merge. Default: the active adapters.")]
    public string[]? Name { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Unmerge", HelpMessage = "Subtract every merged adapter from the base weights again.")]
    public SwitchParameter Unmerge { get; set; }

    [Parameter(ParameterSetName = "Merge", HelpMessage = "After merging, write the merged model as a Hugging Face folder here and output the folder.")]
    public string? OutputPath { get; set; }

    [Parameter(ParameterSetName = "Merge", HelpMessage = "Replace -OutputPath if it exists.")]
    public SwitchParameter Force { get; set; }

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

            var names = Name is { Length: > 0 } ? Name : set.ActiveNames.ToArray();
            string? target = OutputPath is null ? null : ResolveLiteral(OutputPath);
            if (target is not null) RefuseExisting(target, Force);
            if (names.Length == 0)
                Fail(Core.LoraErrorKind.InvalidOperation, "NoAdapterToMerge", $"Model '{Model.Name}' has no active adapter to merge; add or import one first.", Model.Name);

            var toMerge = names.Where(n => !set.MergedNames.Contains(n)).ToArray();
            foreach (var n in names.Except(toMerge)) WriteWarning($"Adapter '{n}' is merged already; merging it again would add it twice, so it was skipped.");
            if (toMerge.Length > 0 && ShouldProcess(Model.Name, $"Merge adapter(s) {string.Join(", ", toMerge)} into the base weights"))
            {
                foreach (var n in toMerge) if (!set.Contains(n)) Fail(Core.LoraErrorKind.ObjectNotFound, "AdapterNotFound", $"The model has no adapter named '{n}'. Adapters: {string.Join(", ", set.Names)}.", n);
                set.SetActive(set.ActiveNames.Union(toMerge).ToArray()); // a merged adapter counts as active
                var before = SampleLogits();
                set.Merge(toMerge, safe: true);
                var after = SampleLogits();
                Model.LastMergeParity = Parity(toMerge, before, after);
                before.Dispose();
                after.Dispose();
                var p = Model.LastMergeParity;
                WriteVerbose($"Merge parity on {p.SampleTokens} tokens: max |Δlogit| {p.MaxAbsDifference:E2}, mean {p.MeanAbsDifference:E2} (largest logit {p.MaxAbsLogit:F2}).");
                if (p.Relative > 1e-3) WriteWarning($"Merged logits differ from unmerged ones by {p.Relative:P3} of the largest logit; check the adapter.");
            }

            if (target is null) { WriteObject(Model); return; }
            if (!ShouldProcess(target, "Write the merged model as a Hugging Face folder")) return;
            WriteObject(Model.Loaded.SaveHuggingFace(target, Force));
        }
    }

    // Logits of a fixed, model-independent sample: BOS then a spread of token ids.
    Tensor SampleLogits()
    {
        var model = Model.Loaded.Model;
        int vocab = model.Config.VocabSize;
        var ids = Enumerable.Range(0, 32).Select(i => i == 0 ? 1L : (long)((i * 7919L) % vocab)).ToArray();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return model.forward(tensor(ids, device: model.Device).unsqueeze(0)).to(ScalarType.Float32).cpu().MoveToOuterDisposeScope();
    }

    static MergeParity Parity(string[] names, Tensor before, Tensor after)
    {
        using var scope = NewDisposeScope();
        var diff = (before - after).abs();
        return new MergeParity
        {
            Adapters = names, MaxAbsDifference = diff.max().item<float>(), MeanAbsDifference = diff.mean().item<float>(),
            MaxAbsLogit = before.abs().max().item<float>(), SampleTokens = (int)before.shape[1],
        };
    }
}
