using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Jobs;

/// <summary>
/// Writes values as Python source literals, so a generated script states its settings as plain dicts that
/// a reader (or a test, with <c>ast.literal_eval</c>) sees exactly as the trainer receives them.
/// </summary>
public static class PythonLiteral
{
    public static string Of(object? value) => value switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        string s => String(s),
        int or long => Convert.ToString(value, CultureInfo.InvariantCulture)!,
        double d => Number(d),
        float f => Number(f),
        JsonNode node => Of(node),
        IEnumerable<KeyValuePair<string, object?>> dict => Dict(dict),
        System.Collections.IEnumerable list => "[" + string.Join(", ", list.Cast<object?>().Select(Of)) + "]",
        _ => throw new ArgumentException($"No Python literal for a {value.GetType().Name}."),
    };

    /// <summary>A JSON value (from a PEFT config) as the Python value json.loads would give.</summary>
    public static string Of(JsonNode? node) => node switch
    {
        null => "None",
        JsonObject o => Dict(o.Select(p => KeyValuePair.Create(p.Key, (object?)p.Value))),
        JsonArray a => "[" + string.Join(", ", a.Select(Of)) + "]",
        JsonValue v when v.TryGetValue<bool>(out var b) => b ? "True" : "False",
        JsonValue v when v.TryGetValue<string>(out var s) => String(s),
        JsonValue v when v.TryGetValue<long>(out var l) => l.ToString(CultureInfo.InvariantCulture),
        JsonValue v when v.TryGetValue<double>(out var d) => Number(d),
        _ => throw new ArgumentException($"No Python literal for JSON {node.ToJsonString()}."),
    };

    /// <summary>A float as Python reads it back exactly (round-trip digits; inf/nan have no literal).</summary>
    public static string Number(double d)
    {
        if (!double.IsFinite(d)) throw new ArgumentException($"{d} has no Python literal.");
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        return r.Contains('.') || r.Contains('E') ? r.Replace("E+", "e").Replace("E", "e") : r + ".0";
    }

    /// <summary>A double-quoted str literal: quotes, backslashes and control characters escaped, the rest as is (the file is UTF-8).</summary>
    public static string String(string s)
    {
        var b = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': b.Append("\\\\"); break;
                case '"': b.Append("\\\""); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                default:
                    if (c < 0x20 || c == 0x7f) b.Append("\\x").Append(((int)c).ToString("x2"));
                    else if (c is '\u2028' or '\u2029') b.Append("\\u").Append(((int)c).ToString("x4"));
                    else b.Append(c);
                    break;
            }
        }
        return b.Append('"').ToString();
    }

    static string Dict(IEnumerable<KeyValuePair<string, object?>> pairs)
        => "{" + string.Join(", ", pairs.Select(p => $"{String(p.Key)}: {Of(p.Value)}")) + "}";

    /// <summary>A dict literal laid out one key per line, for the settings blocks at the top of a script.</summary>
    public static string Block(IEnumerable<KeyValuePair<string, object?>> pairs, string indent = "    ")
        => "{\n" + string.Concat(pairs.Select(p => $"{indent}{String(p.Key)}: {Of(p.Value)},\n")) + "}";
}
