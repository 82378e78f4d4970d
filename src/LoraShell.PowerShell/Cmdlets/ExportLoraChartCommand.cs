using System.Management.Automation;
using LoraShell.Charts;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.Export, "LoraChart", SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
[CmdletHelp(
    "Draws LoraShell results as a self-contained Plotly.NET chart: HTML with plotly.js embedded (opens offline), or PNG.",
    "Export-LoraChart collects the objects piped to it and writes one chart: for LoraShell.TrainingResult objects (or a run's result.json read back with ConvertFrom-Json), the training loss per step (solid) and the validation losses (dashed, a marker per evaluation) of every run on one set of axes, one colour per run; for LoraShell.SvdDeltaReport objects (Invoke-SvdDelta's output), the singular-value spectra on a log scale and the Eckart–Young error-vs-rank curves with each matrix's measured error at its chosen rank; for any other objects with a Name and a numeric Value property (and optionally a Series, and Low and High for the spread of repeated measurements, drawn as error bars), grouped bars (benchmark tables, for instance). -Baseline draws a dashed reference line (the untrained model's loss, chance accuracy) and -YAxisTitle names a bar chart's value axis with its unit; every chart has titled axes, and a spectrum chart says when it shows only some of the matrices. A .html path gets HTML that embeds plotly.js (about 3.6 MB) instead of loading it from a CDN, so the chart works offline and in archives; a .png path gets an image rendered by headless Chromium (Debian's chromium package, or LORASHELL_CHROMIUM). The file is written atomically; an existing file is replaced only with -Force. Supports -WhatIf.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Add-LoraAdapter |
        Start-LoraTraining -DataPath ../shared/data/tinyshakespeare/input.txt -MaxSteps 10 `
            -BatchSize 4 -SequenceLength 64 |
        Export-LoraChart -Path ./out/loss.html -Force
    """,
    "The loss curve of a short run.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Export-LoraModel ./out/b0 -Force |
        Out-Null
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Start-LoraTraining -Method Full -DataPath ../shared/data/tinyshakespeare/input.txt `
            -MaxSteps 5 -BatchSize 4 -SequenceLength 64 -OutputPath ./out/f1 |
        Out-Null
    Invoke-SvdDelta -BasePath ./out/b0 -FineTunedPath ./out/f1/model -OutputPath ./out/d1 `
        -Rank 4 -Force |
        Export-LoraChart -Path ./out/svd.html -Force
    """,
    "Spectra and error-vs-rank curves of a fine-tune's weight deltas.")]
[CmdletExample(
    """
    $full = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Start-LoraTraining -Method Full -DataPath ../shared/data/tinyshakespeare/input.txt `
            -MaxSteps 10 -BatchSize 4 -SequenceLength 64
    $lora = Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Start-LoraTraining -DataPath ../shared/data/tinyshakespeare/input.txt -MaxSteps 10 `
            -BatchSize 4 -SequenceLength 64
    $full, $lora | Export-LoraChart -Path ./out/compare.html -Title 'Full vs LoRA' -Force
    """,
    "Two methods on one chart.")]
[CmdletExample(
    """
    @(
        [pscustomobject]@{ Name = 'Full'; Value = 2236 }
        [pscustomobject]@{ Name = 'LoRA'; Value = 1432 }
        [pscustomobject]@{ Name = 'Ladder'; Value = 1141 }
    ) | Export-LoraChart -Path ./out/memory.html -Title 'Peak memory while training' -YAxisTitle 'peak RSS (MiB)' -Force
    """,
    "Bars of any named values, here peak training memory per method.")]
[CmdletExample(
    """
    @(
        [pscustomobject]@{ Name = 'Full'; Value = 0.706; Low = 0.69; High = 0.72 }
        [pscustomobject]@{ Name = 'LoRA'; Value = 0.697; Low = 0.68; High = 0.71 }
    ) | Export-LoraChart -Path ./out/sst2.html -Title 'SST-2 validation accuracy' -YAxisTitle 'accuracy' `
        -Baseline 0.554 -BaselineName 'before training' -Force
    """,
    "Bars with their spread as error bars and a dashed before-training line.")]
public sealed class ExportLoraChartCommand : LoraCmdlet
{
    readonly List<(string Method, Core.Training.TrainingResult Core)> _training = new();
    readonly List<SvdDeltaReport> _svd = new();
    readonly List<Bar> _bars = new();

    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "Results to draw: LoraShell.TrainingResult objects, the output of Invoke-SvdDelta, a training run's result.json read back with ConvertFrom-Json, or objects with Name and Value (and optional Series) properties.")]
    public PSObject InputObject { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, HelpMessage = "The file to write: .html (interactive, offline) or .png (needs Chromium). Relative paths resolve against the current location.")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(HelpMessage = "Chart title (default depends on the input).")]
    public string? Title { get; set; }

    [Parameter(HelpMessage = "A dashed reference line at this value: the untrained model's validation loss on a loss chart, chance or before-training accuracy on a bar chart.")]
    public double? Baseline { get; set; }

    [Parameter(HelpMessage = "The reference line's name in the legend (default 'baseline'); its value is shown next to it.")]
    public string BaselineName { get; set; } = "baseline";

    [Parameter(HelpMessage = "Bar charts: the title of the value axis, with its unit (for example 'peak RSS (MiB)').")]
    public string? YAxisTitle { get; set; }

    [Parameter(HelpMessage = "Replace the file if it exists.")]
    public SwitchParameter Force { get; set; }

    protected override void Process()
    {
        switch (InputObject.BaseObject)
        {
            case TrainingResult t: _training.Add((t.Core.Method, t.Core)); break;
            case SvdDeltaReport r: _svd.Add(r); break;
            case SvdDeltaSummary: break; // Invoke-SvdDelta's closing line: nothing to draw
            default:
                if (SavedTrainingResult(InputObject) is { } saved) { _training.Add((saved.Method, saved)); break; }
                if (InputObject.Properties["Name"]?.Value is object name && InputObject.Properties["Value"]?.Value is object value
                    && LanguagePrimitives.TryConvertTo(value, System.Globalization.CultureInfo.InvariantCulture, out double number))
                {
                    _bars.Add(new Bar(InputObject.Properties["Series"]?.Value?.ToString() ?? "value", name.ToString()!, number,
                        OptionalNumber("Low"), OptionalNumber("High")));
                    break;
                }
                throw Core.LoraShellException.InvalidArgument("UnsupportedChartInput",
                    $"Export-LoraChart draws LoraShell.TrainingResult objects (or a result.json read back with ConvertFrom-Json), LoraShell.SvdDeltaReport objects, or objects with a Name and a numeric Value; got {InputObject.BaseObject.GetType().FullName}.", InputObject.BaseObject);
        }
    }

    /// <summary>A bar's optional Low/High property (the spread a benchmark measured), as a number.</summary>
    double? OptionalNumber(string property)
    {
        var value = InputObject.Properties[property]?.Value;
        if (value is null) return null;
        if (LanguagePrimitives.TryConvertTo(value, System.Globalization.CultureInfo.InvariantCulture, out double number)) return number;
        throw Core.LoraShellException.InvalidArgument("UnsupportedChartInput",
            $"A bar's {property} should be a number (the low or high end of the spread around its Value); got '{value}'.", InputObject.BaseObject);
    }

    /// <summary>
    /// A training run's result.json read back (Get-Content result.json | ConvertFrom-Json): its Method,
    /// Model and Losses, with the evaluations, make the same loss chart the live result does.
    /// </summary>
    static Core.Training.TrainingResult? SavedTrainingResult(PSObject o)
    {
        if (o.Properties["Method"]?.Value is not object method || o.Properties["Model"]?.Value is not object model || o.Properties["Losses"]?.Value is not object losses)
            return null;
        static double Number(object? v) => LanguagePrimitives.ConvertTo<double>(v is PSObject p ? p.BaseObject : v);
        var evaluations = new List<Core.Training.EvalRecord>();
        foreach (var e in LanguagePrimitives.GetEnumerable(o.Properties["Evaluations"]?.Value) ?? Array.Empty<object>())
        {
            var record = PSObject.AsPSObject(e);
            var accuracy = record.Properties["Accuracy"]?.Value;
            evaluations.Add(new Core.Training.EvalRecord((int)Number(record.Properties["Step"]?.Value), Number(record.Properties["Loss"]?.Value), accuracy is null ? null : Number(accuracy)));
        }
        return new Core.Training.TrainingResult
        {
            Method = method.ToString()!, Model = model.ToString()!,
            Losses = (LanguagePrimitives.GetEnumerable(losses) ?? Array.Empty<object>()).Cast<object>().Select(Number).ToList(),
            Evaluations = evaluations,
        };
    }

    (string Name, double Value)? Reference() => Baseline is { } value ? (BaselineName, value) : null;

    protected override void EndProcessing()
    {
        try
        {
            string target = ResolveLiteral(Path);
            int kinds = (_training.Count > 0 ? 1 : 0) + (_svd.Count > 0 ? 1 : 0) + (_bars.Count > 0 ? 1 : 0);
            if (kinds == 0) return;
            if (kinds > 1)
                Fail(Core.LoraErrorKind.InvalidArgument, "MixedChartInput", "Pipe one kind of input to one Export-LoraChart: training results, SVD delta reports, or named values.", target);
            string extension = System.IO.Path.GetExtension(target).ToLowerInvariant();
            if (extension is not (".html" or ".htm" or ".png"))
                Fail(Core.LoraErrorKind.InvalidArgument, "UnsupportedChartFormat", $"Chart path '{target}' should end in .html (interactive, offline) or .png (image).", target);
            RefuseExisting(target, Force);
            Plotly.NET.GenericChart chart;
            string what;
            if (_training.Count > 0)
            {
                what = $"a loss chart of {_training.Count} training run(s)";
                var runs = _training.Select((t, i) => (Label: _training.Count == 1 ? t.Method : $"{i + 1}. {t.Method}", t.Core)).ToList();
                chart = TrainingCharts.LossCurves(runs, Title ?? "Training and validation loss", Reference());
            }
            else if (_svd.Count > 0)
            {
                what = $"spectra and error-vs-rank curves of {_svd.Count} SVD report(s)";
                chart = SvdCharts.SpectraAndErrors(_svd.Select(r => r.Core).ToList(), Title ?? "SVD of weight deltas");
            }
            else
            {
                what = $"a bar chart of {_bars.Count} value(s)";
                chart = BarCharts.Grouped(_bars, Title ?? "", YAxisTitle, Reference(),
                    _bars.Any(b => b.Low is not null || b.High is not null) ? "error bars: lowest to highest measurement" : null);
            }
            if (!ShouldProcess(target, $"Write {what}")) return;
            WriteItem(extension == ".png" ? ChartImage.SavePng(chart, target) : ChartHtml.Save(chart, target));
        }
        catch (Core.LoraShellException e) { ThrowTerminatingError(ToErrorRecord(e)); }
    }
}
