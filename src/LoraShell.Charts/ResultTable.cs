using System.Globalization;
using System.Net;
using System.Text;

namespace LoraShell.Charts;

/// <summary>
/// A plain HTML table of already formatted values, for the notebooks: a header row and one row per
/// result, numbers right-aligned, instead of the kernel's expandable object tree that prints every
/// double to 17 digits.
/// </summary>
public static class ResultTable
{
    public static string Html(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var html = new StringBuilder("<table><thead><tr>");
        foreach (var h in headers) html.Append("<th>").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        html.Append("</tr></thead><tbody>");
        foreach (var row in rows)
        {
            html.Append("<tr>");
            foreach (var cell in row)
            {
                bool number = double.TryParse(cell.Replace(",", "").Replace("%", "").Replace("±", "").Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out _);
                html.Append(number ? "<td style=\"text-align:right\">" : "<td style=\"text-align:left\">").Append(WebUtility.HtmlEncode(cell)).Append("</td>");
            }
            html.Append("</tr>");
        }
        return html.Append("</tbody></table>").ToString();
    }

    /// <summary>A number with <paramref name="decimals"/> decimals and thousands separators, invariant culture; "–" for none.</summary>
    public static string Number(double? value, int decimals = 3)
        => value is { } v && double.IsFinite(v) ? v.ToString("N" + decimals, CultureInfo.InvariantCulture) : "–";
}
