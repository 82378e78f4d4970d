using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Templates;

/// <summary>
/// Converts caller-supplied .NET values (including System.Text.Json trees) into the Python-like values
/// the interpreter works on. Dictionary order is kept, because tojson output depends on it.
/// </summary>
internal static class ValueConverter
{
    public static object? FromClr(object? value, int depth = 0)
    {
        if (depth > 100)
        {
            throw Unsupported("deeply nested value", "context values nest deeper than 100 levels");
        }

        switch (value)
        {
            case null:
                return null;
            case string or bool or long or double:
                return value;
            case char c:
                return c.ToString();
            case int or short or sbyte or byte or uint or ushort:
                return Convert.ToInt64(value, CultureInfo.InvariantCulture);
            case ulong u:
                return u <= long.MaxValue ? (long)u : throw Unsupported("big integer", "integer does not fit in 64 bits");
            case float f:
                return (double)f;
            case decimal m:
                return (double)m;
            case JsonElement e:
                return FromJson(e, depth);
            case JsonNode node:
                return FromJson(JsonSerializer.SerializeToElement(node), depth);
            case PyTuple t:
                return new PyTuple(t.Items.Select(i => FromClr(i, depth + 1)).ToList());
            case PyDict d:
                var copy = new PyDict();
                foreach (var (k, v) in d.Items)
                {
                    copy.Set(k, FromClr(v, depth + 1));
                }

                return copy;
            case IDictionary dictionary:
                var dict = new PyDict();
                foreach (DictionaryEntry entry in dictionary)
                {
                    dict.Set(Key(entry.Key), FromClr(entry.Value, depth + 1));
                }

                return dict;
            case IEnumerable<KeyValuePair<string, object?>> pairs:
                return FromPairs(pairs.Select(p => (p.Key, p.Value)), depth);
            case IEnumerable<KeyValuePair<string, string>> stringPairs:
                return FromPairs(stringPairs.Select(p => (p.Key, (object?)p.Value)), depth);
            case IEnumerable items:
                var list = new List<object?>();
                foreach (object? item in items)
                {
                    list.Add(FromClr(item, depth + 1));
                }

                return list;
            default:
                throw Unsupported($"context value of type {value.GetType().Name}", "use strings, numbers, booleans, null, lists, dictionaries or JSON values");
        }
    }

    private static PyDict FromPairs(IEnumerable<(string Key, object? Value)> pairs, int depth)
    {
        var dict = new PyDict();
        foreach (var (key, value) in pairs)
        {
            dict.Set(key, FromClr(value, depth + 1));
        }

        return dict;
    }

    private static object Key(object key) => key switch
    {
        string s => s,
        int or long or short or byte => Convert.ToInt64(key, CultureInfo.InvariantCulture),
        bool b => b,
        _ => throw Unsupported($"dictionary key of type {key.GetType().Name}", "dictionary keys must be strings or integers"),
    };

    private static object? FromJson(JsonElement e, int depth)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Null:
            case JsonValueKind.Undefined:
                return null;
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            case JsonValueKind.String:
                return e.GetString();
            case JsonValueKind.Number:
                // json.loads gives int for "1" and float for "1.0" / "1e3"; Python prints them differently.
                string raw = e.GetRawText();
                if (raw.IndexOfAny(['.', 'e', 'E']) < 0)
                {
                    return e.TryGetInt64(out long l) ? l : throw Unsupported("big integer", "integer does not fit in 64 bits");
                }

                return e.GetDouble();
            case JsonValueKind.Array:
                return e.EnumerateArray().Select(i => FromJson(i, depth + 1)).ToList();
            case JsonValueKind.Object:
                var dict = new PyDict();
                foreach (var p in e.EnumerateObject())
                {
                    // Duplicate keys: the last one wins, as with json.loads.
                    dict.Set(p.Name, FromJson(p.Value, depth + 1));
                }

                return dict;
            default:
                throw Unsupported("JSON value", $"unexpected JSON value kind {e.ValueKind}");
        }
    }

    private static ChatTemplateException Unsupported(string construct, string message) =>
        new(ChatTemplateErrorKind.Unsupported, message, 0, 0, construct);
}
