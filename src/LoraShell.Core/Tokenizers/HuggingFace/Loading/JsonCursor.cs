using System.Text.Json;

namespace LoraShell.Core.Tokenizers.HuggingFace.Loading;

/// <summary>A JSON element plus its path and the component it belongs to, so every error can say where it is.</summary>
internal readonly struct JsonCursor
{
    public JsonCursor(JsonElement element, string path, string component)
    {
        Element = element;
        Path = path;
        Component = component;
    }

    public JsonElement Element { get; }

    public string Path { get; }

    /// <summary>Human description, e.g. <c>normalizer.type = Replace</c>.</summary>
    public string Component { get; }

    public TokenizerFormatException Error(string message) => new(message, Component, Path);

    public JsonCursor WithComponent(string component) => new(Element, Path, component);

    public string RequireType(string kind)
    {
        if (Element.ValueKind != JsonValueKind.Object) throw Error($"{kind} must be a JSON object.");
        if (!Element.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
        {
            throw Error($"{kind} has no \"type\" field.");
        }
        return t.GetString()!;
    }

    /// <summary>Rejects keys we do not implement: the crate would honour them, so ignoring them could change results.</summary>
    public void AllowOnly(params string[] keys)
    {
        foreach (var p in Element.EnumerateObject())
        {
            if (p.Name == "type" || Array.IndexOf(keys, p.Name) >= 0) continue;
            throw new TokenizerFormatException(
                $"Unsupported option \"{p.Name}\". Supported options: {(keys.Length == 0 ? "(none)" : string.Join(", ", keys))}.",
                $"{Component}, option {p.Name}", $"{Path}.{p.Name}");
        }
    }

    public bool Has(string name) => Element.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonCursor Get(string name)
    {
        if (!Element.TryGetProperty(name, out var v)) throw Error($"Missing field \"{name}\".");
        return new JsonCursor(v, $"{Path}.{name}", Component);
    }

    public JsonCursor? GetOptional(string name) =>
        Element.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? new JsonCursor(v, $"{Path}.{name}", Component) : null;

    public string GetString(string name)
    {
        var v = Get(name);
        if (v.Element.ValueKind != JsonValueKind.String) throw v.Error($"\"{name}\" must be a string.");
        return v.Element.GetString()!;
    }

    public string? GetStringOrNull(string name)
    {
        var v = GetOptional(name);
        if (v is null) return null;
        if (v.Value.Element.ValueKind != JsonValueKind.String) throw v.Value.Error($"\"{name}\" must be a string or null.");
        return v.Value.Element.GetString();
    }

    public bool GetBool(string name, bool defaultValue)
    {
        var v = GetOptional(name);
        if (v is null) return defaultValue;
        return v.Value.Element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw v.Value.Error($"\"{name}\" must be a boolean."),
        };
    }

    public int GetInt(string name, int defaultValue)
    {
        var v = GetOptional(name);
        if (v is null) return defaultValue;
        if (v.Value.Element.ValueKind != JsonValueKind.Number || !v.Value.Element.TryGetInt32(out int i) || i < 0)
        {
            throw v.Value.Error($"\"{name}\" must be a non-negative integer.");
        }
        return i;
    }

    /// <summary>A Rust <c>char</c> field: exactly one code point.</summary>
    public int GetChar(string name)
    {
        string s = GetString(name);
        if (s.Length == 0 || s.Length > 2 || (s.Length == 2 && !char.IsSurrogatePair(s[0], s[1])))
        {
            throw Get(name).Error($"\"{name}\" must be a single character.");
        }
        return char.ConvertToUtf32(s, 0);
    }

    public IEnumerable<JsonCursor> Items(string name)
    {
        var v = Get(name);
        if (v.Element.ValueKind != JsonValueKind.Array) throw v.Error($"\"{name}\" must be an array.");
        int i = 0;
        foreach (var item in v.Element.EnumerateArray())
        {
            yield return new JsonCursor(item, $"{v.Path}[{i}]", Component);
            i++;
        }
    }
}
