using System.Globalization;
using System.Text;

namespace LoraShell.Core.Templates;

/// <summary>
/// Python's json.dumps as transformers calls it from its tojson filter
/// (ensure_ascii=False, indent=None, separators=None, sort_keys=False by default).
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, bool ensureAscii, string? indent, string itemSeparator, string keySeparator, bool sortKeys)
    {
        var sb = new StringBuilder();
        Write(sb, value, ensureAscii, indent, itemSeparator, keySeparator, sortKeys, 0);
        return sb.ToString();
    }

    private static void Write(
        StringBuilder sb, object? value, bool ascii, string? indent, string itemSep, string keySep, bool sortKeys, int level)
    {
        if (level > 200)
        {
            throw JinjaError.Value("Circular reference detected");
        }

        switch (value)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d: sb.Append(Float(d)); return;
            case string s: WriteString(sb, s, ascii); return;
            case List<object?> list: WriteArray(sb, list, ascii, indent, itemSep, keySep, sortKeys, level); return;
            case PyTuple t: WriteArray(sb, t.Items, ascii, indent, itemSep, keySep, sortKeys, level); return;
            case PyDict dict: WriteObject(sb, dict, ascii, indent, itemSep, keySep, sortKeys, level); return;
            case Undefined u: throw u.Fail();
            default:
                throw JinjaError.Type($"Object of type {PyOps.TypeName(value)} is not JSON serializable");
        }
    }

    private static string Float(double d)
    {
        if (double.IsNaN(d))
        {
            return "NaN";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "Infinity" : "-Infinity";
        }

        return PyOps.FloatRepr(d);
    }

    private static void NewLine(StringBuilder sb, string? indent, int level)
    {
        if (indent is null)
        {
            return;
        }

        sb.Append('\n');
        for (int i = 0; i < level; i++)
        {
            sb.Append(indent);
        }
    }

    private static void WriteArray(
        StringBuilder sb, IReadOnlyList<object?> items, bool ascii, string? indent, string itemSep, string keySep, bool sortKeys, int level)
    {
        if (items.Count == 0)
        {
            sb.Append("[]");
            return;
        }

        sb.Append('[');
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(itemSep);
            }

            NewLine(sb, indent, level + 1);
            Write(sb, items[i], ascii, indent, itemSep, keySep, sortKeys, level + 1);
        }

        NewLine(sb, indent, level);
        sb.Append(']');
    }

    private static void WriteObject(
        StringBuilder sb, PyDict dict, bool ascii, string? indent, string itemSep, string keySep, bool sortKeys, int level)
    {
        if (dict.Count == 0)
        {
            sb.Append("{}");
            return;
        }

        var entries = dict.Items.Select(kv => (Key: KeyText(kv.Key), kv.Value)).ToList();
        if (sortKeys)
        {
            // Python sorts the original keys; for the str keys chat data uses this is the same order.
            if (dict.Keys.Any(k => k is not string))
            {
                throw JinjaError.Unsupported("tojson(sort_keys=true)", "sort_keys with non-string keys is not supported");
            }

            entries.Sort((a, b) => PyString.Compare(a.Key, b.Key));
        }

        sb.Append('{');
        for (int i = 0; i < entries.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(itemSep);
            }

            NewLine(sb, indent, level + 1);
            WriteString(sb, entries[i].Key, ascii);
            sb.Append(keySep);
            Write(sb, entries[i].Value, ascii, indent, itemSep, keySep, sortKeys, level + 1);
        }

        NewLine(sb, indent, level);
        sb.Append('}');
    }

    private static string KeyText(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        _ => throw JinjaError.Type($"keys must be str, int, float, bool or None, not {PyOps.TypeName(key)}"),
    };

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    // UTF-16 units map one-to-one onto Python's \uXXXX surrogate-pair escapes.
                    if (c < 0x20 || (ascii && c > 0x7E))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}
