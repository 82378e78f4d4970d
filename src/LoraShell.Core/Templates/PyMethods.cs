namespace LoraShell.Core.Templates;

/// <summary>
/// Attribute lookup (<c>value.name</c>) with Jinja's sandbox rules, and the Python methods templates call
/// on strings, dicts and lists. Python attributes that are not implemented fail loudly instead of
/// falling back to "undefined", because Python would have returned a real value there.
/// </summary>
internal static class PyMethods
{
    private static readonly HashSet<string> StrAttributes =
    [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format", "format_map",
        "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric",
        "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
        "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill",
    ];

    private static readonly HashSet<string> DictAttributes =
        ["clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"];

    private static readonly HashSet<string> ListAttributes =
        ["append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort"];

    private static readonly HashSet<string> NumberAttributes =
    [
        "as_integer_ratio", "bit_count", "bit_length", "conjugate", "denominator", "from_bytes", "fromhex", "hex",
        "imag", "is_integer", "numerator", "real", "to_bytes",
    ];

    // The sandbox transformers uses (ImmutableSandboxedEnvironment) hides these, so they read as undefined.
    private static readonly HashSet<string> MutatingDict = ["clear", "pop", "popitem", "setdefault", "update"];
    private static readonly HashSet<string> MutatingList = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"];

    /// <summary>
    /// Jinja's getattr: Python attribute first, then item lookup. When <paramref name="fromSubscript"/> is set
    /// the item lookup already failed and only the attribute is tried.
    /// </summary>
    public static object? GetAttribute(object? obj, string name, bool fromSubscript = false)
    {
        if (obj is Undefined u)
        {
            throw u.Fail();
        }

        if (name.StartsWith('_'))
        {
            return new Undefined($"access to attribute '{name}' of '{PyOps.TypeName(obj)}' object is unsafe.");
        }

        switch (obj)
        {
            case string s when StrAttributes.Contains(name):
                return StrMethod(s, name);
            case PyDict d:
                if (DictAttributes.Contains(name))
                {
                    return MutatingDict.Contains(name) ? Unsafe(obj, name) : DictMethod(d, name);
                }

                if (!fromSubscript && d.TryGet(name, out object? value))
                {
                    return value;
                }

                break;
            case List<object?> l when ListAttributes.Contains(name):
                return MutatingList.Contains(name) ? Unsafe(obj, name) : ListMethod(l, name);
            case long or double or bool when NumberAttributes.Contains(name):
                throw JinjaError.Unsupported($"{PyOps.TypeName(obj)}.{name}", $"the Python attribute {PyOps.TypeName(obj)}.{name} is not supported");
            case PyTuple when name is "count" or "index":
                throw JinjaError.Unsupported($"tuple.{name}", $"tuple.{name} is not supported");
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out object? attr)
                    ? attr
                    : new Undefined($"'Namespace object' has no attribute '{name}'");
            case LoopContext loop:
                return loop.Get(name);
            case PyCallable or PyIterator or PyDictView or PyRange:
                throw JinjaError.Unsupported($"{PyOps.TypeName(obj)}.{name}", $"attributes of {PyOps.TypeName(obj)} objects are not supported");
        }

        return new Undefined($"{PyOps.Describe(obj)} has no attribute '{name}'");
    }

    private static Undefined Unsafe(object? obj, string name) =>
        new($"access to attribute '{name}' of '{PyOps.TypeName(obj)}' object is unsafe.");

    private static string RequireStr(object? v, string function)
    {
        return v switch
        {
            string s => s,
            Undefined u => throw u.Fail(),
            _ => throw JinjaError.Type($"{function} arg must be str, not {PyOps.TypeName(v)}"),
        };
    }

    private static long ToIndexArg(object? v, string function) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        null => -1,
        _ => throw JinjaError.Type($"{function}: '{PyOps.TypeName(v)}' object cannot be interpreted as an integer"),
    };

    private static void NoRange(object?[] bound, string function)
    {
        for (int i = 1; i < bound.Length; i++)
        {
            if (bound[i] is not Missing)
            {
                throw JinjaError.Unsupported($"str.{function}(start, end)", $"start/end arguments of str.{function} are not supported");
            }
        }
    }

    private static PyCallable StrMethod(string s, string name)
    {
        string qualified = "str." + name;
        return new PyCallable(qualified, args =>
        {
            switch (name)
            {
                case "startswith":
                case "endswith":
                    {
                        var b = args.Bind(name, "prefix", "start?", "end?");
                        NoRange(b, name);
                        IEnumerable<object?> candidates = b[0] is PyTuple t ? t.Items : [b[0]];
                        foreach (object? c in candidates)
                        {
                            string p = RequireStr(c, name);
                            if (name == "startswith" ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal))
                            {
                                return true;
                            }
                        }

                        return false;
                    }

                case "strip":
                case "lstrip":
                case "rstrip":
                    {
                        var b = args.Bind(name, "chars?");
                        string? chars = b[0] is Missing or null ? null : RequireStr(b[0], name);
                        return PyString.Strip(s, chars, name != "rstrip", name != "lstrip");
                    }

                case "split":
                case "rsplit":
                    {
                        var b = args.Bind(name, "sep?", "maxsplit?");
                        string? sep = b[0] is Missing or null ? null : RequireStr(b[0], name);
                        long max = b[1] is Missing ? -1 : ToIndexArg(b[1], name);
                        return name == "split" ? PyString.Split(s, sep, max) : PyString.RSplit(s, sep, max);
                    }

                case "replace":
                    {
                        var b = args.Bind(name, "old", "new", "count?");
                        long count = b[2] is Missing ? -1 : ToIndexArg(b[2], name);
                        return PyString.Replace(s, RequireStr(b[0], name), RequireStr(b[1], name), count);
                    }

                case "find":
                case "rfind":
                    {
                        var b = args.Bind(name, "sub", "start?", "end?");
                        NoRange(b, name);
                        return PyString.Find(s, RequireStr(b[0], name), name == "rfind");
                    }

                case "count":
                    {
                        var b = args.Bind(name, "sub", "start?", "end?");
                        NoRange(b, name);
                        return PyString.Count(s, RequireStr(b[0], name));
                    }

                case "join":
                    {
                        var b = args.Bind(name, "iterable");
                        var parts = new List<string>();
                        int i = 0;
                        foreach (object? item in PyOps.Iterate(b[0]))
                        {
                            if (item is not string str)
                            {
                                throw JinjaError.Type($"sequence item {i}: expected str instance, {PyOps.TypeName(item)} found");
                            }

                            parts.Add(str);
                            i++;
                        }

                        return string.Join(s, parts);
                    }

                case "removeprefix":
                    {
                        string p = RequireStr(args.Bind(name, "prefix")[0], name);
                        return s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s;
                    }

                case "removesuffix":
                    {
                        string p = RequireStr(args.Bind(name, "suffix")[0], name);
                        return p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s;
                    }

                case "upper":
                    args.Bind(name);
                    return PyString.Upper(s);
                case "lower":
                    args.Bind(name);
                    return PyString.Lower(s);
                case "title":
                    args.Bind(name);
                    return PyString.Title(s);
                case "capitalize":
                    args.Bind(name);
                    return PyString.Capitalize(s);
                case "islower":
                    args.Bind(name);
                    return PyString.IsLower(s);
                case "isupper":
                    args.Bind(name);
                    return PyString.IsUpper(s);
                case "isspace":
                    args.Bind(name);
                    return s.Length > 0 && s.All(PyString.IsSpace);
                default:
                    throw JinjaError.Unsupported(qualified, $"the Python string method {qualified}() is not supported");
            }
        });
    }

    private static PyCallable DictMethod(PyDict d, string name) => new("dict." + name, args =>
    {
        switch (name)
        {
            case "get":
                {
                    var b = args.Bind(name, "key", "default?");
                    if (b[0] is not null && b[0] is not Undefined && !PyKeyComparer.IsHashable(b[0]!))
                    {
                        throw JinjaError.Type($"unhashable type: '{PyOps.TypeName(b[0])}'");
                    }

                    return d.TryGet(b[0], out object? v) ? v : (b[1] is Missing ? null : b[1]);
                }

            case "items":
            case "keys":
            case "values":
                args.Bind(name);
                return new PyDictView(name, d);
            case "copy":
                args.Bind(name);
                var copy = new PyDict();
                foreach (var (k, v) in d.Items)
                {
                    copy.Set(k, v);
                }

                return copy;
            default:
                throw JinjaError.Unsupported("dict." + name, $"dict.{name}() is not supported");
        }
    });

    private static PyCallable ListMethod(List<object?> l, string name) => new("list." + name, args =>
    {
        switch (name)
        {
            case "count":
                {
                    var b = args.Bind(name, "value");
                    return (long)l.Count(x => PyOps.Equal(x, b[0]));
                }

            case "index":
                {
                    var b = args.Bind(name, "value", "start?", "end?");
                    if (b[1] is not Missing || b[2] is not Missing)
                    {
                        throw JinjaError.Unsupported("list.index(start, end)", "start/end arguments of list.index are not supported");
                    }

                    int idx = l.FindIndex(x => PyOps.Equal(x, b[0]));
                    return idx >= 0 ? (long)idx : throw JinjaError.Value($"{PyOps.Repr(b[0])} is not in list");
                }

            case "copy":
                args.Bind(name);
                return l.ToList();
            default:
                throw JinjaError.Unsupported("list." + name, $"list.{name}() is not supported");
        }
    });
}
