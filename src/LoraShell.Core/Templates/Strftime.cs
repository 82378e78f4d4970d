using System.Globalization;
using System.Text;

namespace LoraShell.Core.Templates;

/// <summary>Python's datetime.strftime for the directives chat templates use, in the C locale.</summary>
internal static class Strftime
{
    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

    private static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    public static string Format(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }

            if (i + 1 >= format.Length)
            {
                throw JinjaError.Unsupported("strftime '%'", "a trailing '%' in strftime formats is not supported");
            }

            char d = format[++i];
            string two(int v) => v.ToString("00", CultureInfo.InvariantCulture);
            sb.Append(d switch
            {
                'a' => Days[(int)t.DayOfWeek][..3],
                'A' => Days[(int)t.DayOfWeek],
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'd' => two(t.Day),
                'b' or 'h' => Months[t.Month - 1][..3],
                'B' => Months[t.Month - 1],
                'm' => two(t.Month),
                'y' => two(t.Year % 100),
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'H' => two(t.Hour),
                'I' => two(t.Hour % 12 == 0 ? 12 : t.Hour % 12),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'M' => two(t.Minute),
                'S' => two(t.Second),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture),
                'j' => t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                'z' or 'Z' => "", // datetime.now() is naive, so Python prints nothing for these
                '%' => "%",
                _ => throw JinjaError.Unsupported($"strftime '%{d}'", $"the strftime directive '%{d}' is not supported"),
            });
        }

        return sb.ToString();
    }
}
