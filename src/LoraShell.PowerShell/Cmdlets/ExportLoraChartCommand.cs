using System.Management.Automation;
using LoraShell.Core.Reporting;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Export, "LoraChart", SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
[CmdletHelp(
    "Draws LoraShell results as a self-contained Plotly.NET HTML chart (plotly.js embedded, so it opens offline).",
    "Export-LoraChart collects the objects piped to it and writes one chart: for LoraShell.TrainingResult objects, the training loss per step and the validation losses of every run on one set of axes; for LoraShell.SvdDeltaReport objects (Invoke-SvdDelta's output), the singular-value spectra on a log scale and the Eckart–Young error-vs-rank curves with each matrix's measured error at its chosen rank. The HTML embeds plotly.js (about 3.6 MB) instead of loading it from a CDN, so the chart works offline and in archives. The file is written atomically; an existing file is replaced only with -Force. Supports -WhatIf.")]
[CmdletExample(
    "Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter | Start-LoraTraining -DataPath ./shared/data/tinyshakespeare/input.txt -MaxSteps 10 -BatchSize 4 -SequenceLength 64 | Export-LoraChart -Path ./out/loss.html -Force",
    "The loss curve of a short run.")]
[CmdletExample(
    "Import-LoraModel ./shared/models/stories260K/stories260K.bin | Export-LoraModel ./out/b0 -Force | Out-Null; Import-LoraModel ./shared/models/stories260K/stories260K.bin | Start-LoraTraining -Method Full -DataPath ./shared/data/tinyshakespeare/input.txt -MaxSteps 5 -BatchSize 4 -SequenceLength 64 -OutputPath ./out/f1 | Out-Null; Invoke-SvdDelta -BasePath ./out/b0 -FineTunedPath ./out/f1/model -OutputPath ./out/d1 -Rank 4 -Force | Export-LoraChart -Path ./out/svd.html -Force",
    "Spectra and error-vs-rank curves of a fine-tune's weight deltas.")]
[CmdletExample(
    "$full = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Start-LoraTraining -Method Full -DataPath ./shared/data/tinyshakespeare/input.txt -MaxSteps 10 -BatchSize 4 -SequenceLength 64; $lora = Import-LoraModel ./shared/models/stories260K/stories260K.bin | Start-LoraTraining -DataPath ./shared/data/tinyshakespeare/input.txt -MaxSteps 10 -BatchSize 4 -SequenceLength 64; $full, $lora | Export-LoraChart -Path ./out/compare.html -Title 'Full vs LoRA' -Force",
    "Two methods on one chart.")]
public sealed class ExportLoraChartCommand : LoraCmdlet
{
    readonly List<TrainingResult> _training = new();
    readonly List<SvdDeltaReport> _svd = new();

    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "Results to draw: LoraShell.TrainingResult objects, or the output of Invoke-SvdDelta.")]
    public PSObject InputObject { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, HelpMessage = "The HTML file to write. Relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "Chart title (default depends on the input).")]
    public string? Title { get; set; }

    [Parameter(HelpMessage = "Replace the file if it exists.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        switch (InputObject.BaseObject)
        {
            case TrainingResult t: _training.Add(t); break;
            case SvdDeltaReport r: _svd.Add(r); break;
            case SvdDeltaSummary: break; // Invoke-SvdDelta's closing line: nothing to draw
            default:
                throw Core.LoraShellException.InvalidArgument("UnsupportedChartInput",
                    $"Export-LoraChart draws LoraShell.TrainingResult and LoraShell.SvdDeltaReport objects; got {InputObject.BaseObject.GetType().FullName}.", InputObject.BaseObject);
        }
    }

    protected override void EndProcessing()
    {
        try
        {
            string target = ResolveLiteral(Path);
            if (_training.Count == 0 && _svd.Count == 0) return;
            if (_training.Count > 0 && _svd.Count > 0)
                Fail(Core.LoraErrorKind.InvalidArgument, "MixedChartInput", "Pipe either training results or SVD delta reports to one Export-LoraChart, not both.", target);
            RefuseExisting(target, Force);
            if (_training.Count > 0)
            {
                if (!ShouldProcess(target, $"Write a loss chart of {_training.Count} training run(s)")) return;
                var runs = _training.Select((t, i) => (Label: _training.Count == 1 ? t.Method : $"{i + 1}. {t.Method}", t.Core)).ToList();
                WriteObject(ChartHtml.Save(TrainingCharts.LossCurves(runs, Title ?? "Training and validation loss"), target));
            }
            else
            {
                if (!ShouldProcess(target, $"Write spectra and error-vs-rank curves of {_svd.Count} SVD report(s)")) return;
                WriteObject(ChartHtml.Save(SvdCharts.SpectraAndErrors(_svd.Select(r => r.Core).ToList(), Title ?? "SVD of weight deltas"), target));
            }
        }
        catch (Core.LoraShellException e) { ThrowTerminatingError(ToErrorRecord(e)); }
    }
}
