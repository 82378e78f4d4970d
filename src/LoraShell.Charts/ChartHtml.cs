using Giraffe.ViewEngine;
using LoraShell.Core.IO;
using Microsoft.FSharp.Core;
using Plotly.NET;

namespace LoraShell.Charts;

/// <summary>Writes Plotly.NET charts as self-contained HTML: plotly.js is embedded, so the file opens offline.</summary>
public static class ChartHtml
{
    public static string Render(GenericChart chart)
    {
        var options = DisplayOptions.init(FSharpOption<string>.None, FSharpOption<string>.None, FSharpOption<string>.None,
            FSharpOption<HtmlElements.XmlNode>.None, null, null, PlotlyJSReference.Full);
        return GenericChart.toEmbeddedHTML(Plotly.NET.Chart.withDisplayOptions(options).Invoke(chart));
    }

    public static FileInfo Save(GenericChart chart, string path)
    {
        AtomicFile.WriteAllText(path, Render(chart));
        return new FileInfo(Path.GetFullPath(path));
    }
}
