using System.Globalization;

namespace LoraShell.Core.Templates;

/// <summary>Jinja's built-in filters (the subset chat templates use) plus transformers' tojson.</summary>
internal static class Filters
{
    // Every filter Jinja 3.1 ships; those missing from Implemented fail at parse time as unsupported.
    private static readonly HashSet<string> JinjaBuiltins =
    [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
        "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr", "replace",
        "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title",
        "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    ];

    private static readonly Dictionary<string, Func<object?, CallArgs, object?>> Implemented = new(StringComparer.Ordinal)
    {
        ["abs"] = Abs,
        ["capitalize"] = (v, a) => Str1(a, "capitalize", () => PyString.Capitalize(SoftStr(v))),
        ["count"] = Length,
        ["length"] = Length,
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["first"] = First,
        ["float"] = ToFloat,
        ["int"] = ToInt,
        ["items"] = Items,
        ["join"] = Join,
        ["last"] = Last,
        ["list"] = (v, a) =>
        {
            a.Bind("list");
            return PyOps.Iterate(v).ToList();
        },
        ["lower"] = (v, a) => Str1(a, "lower", () => PyString.Lower(SoftStr(v))),
        ["upper"] = (v, a) => Str1(a, "upper", () => PyString.Upper(SoftStr(v))),
        ["title"] = (v, a) => Str1(a, "title", () => PyString.JinjaTitle(SoftStr(v))),
        ["string"] = (v, a) => Str1(a, "string", () => SoftStr(v)),
        ["map"] = Map,
        ["max"] = (v, a) => MinMax(v, a, "max"),
        ["min"] = (v, a) => MinMax(v, a, "min"),
        ["select"] = (v, a) => SelectOrReject(v, a, select: true, byAttribute: false),
        ["reject"] = (v, a) => SelectOrReject(v, a, select: false, byAttribute: false),
        ["selectattr"] = (v, a) => SelectOrReject(v, a, select: true, byAttribute: true),
        ["rejectattr"] = (v, a) => SelectOrReject(v, a, select: false, byAttribute: true),
        ["replace"] = Replace,
        ["reverse"] = Reverse,
        ["sort"] = Sort,
        ["sum"] = Sum,
        ["tojson"] = ToJson,
        ["trim"] = Trim,
        ["unique"] = Unique,
    };

    public static void Validate(string name, Token at)
    {
        if (Implemented.ContainsKey(name))
        {
            return;
        }

        string construct = $"filter '{name}'";
        if (JinjaBuiltins.Contains(name))
        {
            throw new ChatTemplateException(
                ChatTemplateErrorKind.Unsupported, $"the Jinja filter '{name}' is not implemented", at.Line, at.Column, construct);
        }

        throw new ChatTemplateException(ChatTemplateErrorKind.Syntax, $"No filter named '{name}'.", at.Line, at.Column, construct);
    }

    public static object? Apply(string name, object? value, CallArgs args) => Implemented[name](value, args);

    /// <summary>Jinja's soft_str: str() of the value, "" for undefined.</summary>
    private static string SoftStr(object? v) => PyOps.Str(v);

    private static object? Str1(CallArgs args, string name, Func<string> body)
    {
        args.Bind(name);
        return body();
    }

    private static bool IsGiven(object? v) => v is not Missing;

    private static bool Flag(object? v, bool dflt) => v is Missing ? dflt : PyOps.Truthy(v);

    // Jinja lowercases strings for case-insensitive comparisons and leaves other values alone.
    private static object? IgnoreCase(object? v) => v is string s ? PyString.Lower(s) : v;

    /// <summary>Jinja's make_attrgetter: "a.b.0" walks items/attributes like value['a']['b'][0].</summary>
    private static Func<object?, object?> AttrGetter(object? attribute, Func<object?, object?>? post = null, object? dflt = null)
    {
        List<object?> parts = attribute switch
        {
            null or Missing => [],
            string s => s.Split('.').Select(p => p.Length > 0 && p.All(char.IsAsciiDigit) ? (object?)long.Parse(p, CultureInfo.InvariantCulture) : p).ToList(),
            _ => [attribute],
        };
        return item =>
        {
            foreach (object? part in parts)
            {
                item = PyOps.GetItem(item, part);
            }

            if (dflt is not null && item is Undefined)
            {
                item = dflt;
            }

            return post is null ? item : post(item);
        };
    }

    private static object? Abs(object? v, CallArgs a)
    {
        a.Bind("abs");
        return v switch
        {
            long l => l == long.MinValue ? throw JinjaError.Unsupported("big integer", "abs overflow") : (object)Math.Abs(l),
            bool b => (object)(b ? 1L : 0L),
            double d => (object)Math.Abs(d),
            Undefined u => throw u.Fail(),
            _ => throw JinjaError.Type($"bad operand type for abs(): '{PyOps.TypeName(v)}'"),
        };
    }

    private static object? Length(object? v, CallArgs a)
    {
        a.Bind("length");
        return PyOps.Length(v);
    }

    private static object? Default(object? v, CallArgs a)
    {
        var b = a.Bind("default", "default_value?", "boolean?");
        object? fallback = IsGiven(b[0]) ? b[0] : "";
        return v is Undefined || (Flag(b[1], false) && !PyOps.Truthy(v)) ? fallback : v;
    }

    private static object? DictSort(object? v, CallArgs a)
    {
        var b = a.Bind("dictsort", "case_sensitive?", "by?", "reverse?");
        bool caseSensitive = Flag(b[0], false);
        string by = IsGiven(b[1]) ? b[1] as string ?? "" : "key";
        if (by is not ("key" or "value"))
        {
            throw new JinjaError(ChatTemplateErrorKind.Runtime, "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
        }

        if (v is not PyDict dict)
        {
            throw JinjaError.Unsupported("dictsort on " + PyOps.TypeName(v), "dictsort needs a dict");
        }

        int pos = by == "key" ? 0 : 1;
        var items = dict.Items.Select(kv => new PyTuple([kv.Key, kv.Value])).ToList();
        return StableSort(items.Cast<object?>(), item => Key(((PyTuple)item!).Items[pos], caseSensitive), Flag(b[2], false));
    }

    private static object? Key(object? v, bool caseSensitive) => caseSensitive ? v : IgnoreCase(v);

    private static List<object?> StableSort(IEnumerable<object?> items, Func<object?, object?> key, bool reverse)
    {
        var comparer = Comparer<object?>.Create((x, y) => reverse ? PyOps.Compare(y, x) : PyOps.Compare(x, y));
        var keyed = items.Select(i => (Item: i, Key: key(i))).ToList();
        try
        {
            // OrderBy is stable, like Python's sorted (also with reverse=True).
            return keyed.OrderBy(p => p.Key, comparer).Select(p => p.Item).ToList();
        }
        catch (InvalidOperationException e) when (e.InnerException is JinjaError inner)
        {
            throw inner;
        }
    }

    private static object? First(object? v, CallArgs a)
    {
        a.Bind("first");
        foreach (object? item in PyOps.Iterate(v))
        {
            return item;
        }

        return new Undefined("No first item, sequence was empty.");
    }

    private static object? Last(object? v, CallArgs a)
    {
        a.Bind("last");
        IEnumerable<object?> items = v switch
        {
            PyIterator it => throw JinjaError.Type($"'{it.TypeName}' object is not reversible"),
            _ => PyOps.Iterate(v),
        };
        object? last = null;
        bool any = false;
        foreach (object? item in items)
        {
            last = item;
            any = true;
        }

        return any ? last : new Undefined("No last item, sequence was empty.");
    }

    private static object? ToInt(object? v, CallArgs a)
    {
        var b = a.Bind("int", "default?", "base?");
        object? fallback = IsGiven(b[0]) ? b[0] : 0L;
        if (IsGiven(b[1]) && !PyOps.Equal(b[1], 10L))
        {
            throw JinjaError.Unsupported("int(base=...)", "int filter with a base other than 10 is not supported");
        }

        switch (v)
        {
            case long or bool:
                return v is bool flag ? (flag ? 1L : 0L) : v;
            case double d:
                return TruncateOrDefault(d, fallback);
            case string s:
                if (PyNumberParser.TryParseInt(s, out long parsed))
                {
                    return parsed;
                }

                return PyNumberParser.TryParseFloat(s, out double f) ? TruncateOrDefault(f, fallback) : fallback;
            case Undefined u:
                throw u.Fail();
            default:
                return fallback;
        }
    }

    private static object? TruncateOrDefault(double d, object? fallback)
    {
        if (double.IsNaN(d) || double.IsInfinity(d))
        {
            return fallback;
        }

        double t = Math.Truncate(d);
        if (t >= 9.2e18 || t <= -9.2e18)
        {
            throw JinjaError.Unsupported("big integer", "integer does not fit in 64 bits");
        }

        return (long)t;
    }

    private static object? ToFloat(object? v, CallArgs a)
    {
        var b = a.Bind("float", "default?");
        object? fallback = IsGiven(b[0]) ? b[0] : 0.0;
        return v switch
        {
            double d => d,
            long l => (double)l,
            bool flag => flag ? 1.0 : 0.0,
            string s => PyNumberParser.TryParseFloat(s, out double f) ? f : fallback,
            Undefined u => throw u.Fail(),
            _ => fallback,
        };
    }

    private static object? Items(object? v, CallArgs a)
    {
        a.Bind("items");
        return v switch
        {
            Undefined => new PyIterator("generator", []),
            PyDict d => new PyIterator("generator", d.Items.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList()),
            _ => throw JinjaError.Type("Can only get item pairs from a mapping."),
        };
    }

    private static object? Join(object? v, CallArgs a)
    {
        var b = a.Bind("join", "d?", "attribute?");
        string sep = IsGiven(b[0]) ? PyOps.Str(b[0]) : "";
        IEnumerable<object?> items = PyOps.Iterate(v);
        if (IsGiven(b[1]) && b[1] is not null)
        {
            var getter = AttrGetter(b[1]);
            items = items.Select(getter);
        }

        return string.Join(sep, items.Select(PyOps.Str));
    }

    private static object? Map(object? v, CallArgs a)
    {
        if (!PyOps.Truthy(v))
        {
            return new PyIterator("generator", []);
        }

        Func<object?, object?> func;
        if (a.Positional.Count == 0 && a.Keywords.Any(k => k.Key == "attribute"))
        {
            var b = a.Bind("map", "attribute", "default?");
            func = AttrGetter(b[0], dflt: IsGiven(b[1]) ? b[1] : null);
        }
        else
        {
            if (a.Positional.Count == 0 || a.Positional[0] is not string filterName)
            {
                throw new JinjaError(ChatTemplateErrorKind.Runtime, "FilterArgumentError: map requires a filter argument");
            }

            if (!Implemented.TryGetValue(filterName, out var filter))
            {
                throw JinjaError.Unsupported($"filter '{filterName}'", $"map with filter '{filterName}' is not supported");
            }

            var rest = new CallArgs(a.Positional.Skip(1).ToList(), a.Keywords);
            func = item => filter(item, rest);
        }

        return new PyIterator("generator", PyOps.Iterate(v).Select(func));
    }

    private static object? MinMax(object? v, CallArgs a, string which)
    {
        var b = a.Bind(which, "case_sensitive?", "attribute?");
        bool caseSensitive = Flag(b[0], false);
        var key = AttrGetter(IsGiven(b[1]) ? b[1] : null, caseSensitive ? null : IgnoreCase);
        object? best = null;
        object? bestKey = null;
        bool any = false;
        foreach (object? item in PyOps.Iterate(v))
        {
            object? k = key(item);
            // Python's min/max keep the first of equal elements.
            if (!any || (which == "max" ? PyOps.Compare(k, bestKey) > 0 : PyOps.Compare(k, bestKey) < 0))
            {
                best = item;
                bestKey = k;
                any = true;
            }
        }

        return any ? best : new Undefined("No aggregated item, sequence was empty.");
    }

    private static object? SelectOrReject(object? v, CallArgs a, bool select, bool byAttribute)
    {
        if (!PyOps.Truthy(v))
        {
            return new PyIterator("generator", []);
        }

        int offset = 0;
        Func<object?, object?> transform = x => x;
        if (byAttribute)
        {
            if (a.Positional.Count == 0)
            {
                throw new JinjaError(ChatTemplateErrorKind.Runtime, "FilterArgumentError: Missing parameter for attribute name");
            }

            transform = AttrGetter(a.Positional[0]);
            offset = 1;
        }

        Func<object?, bool> test;
        if (a.Positional.Count > offset)
        {
            if (a.Positional[offset] is not string testName || !TestFunctions.IsImplemented(testName))
            {
                throw JinjaError.Unsupported($"test '{a.Positional[offset]}'", $"test '{PyOps.Str(a.Positional[offset])}' is not supported");
            }

            var rest = new CallArgs(a.Positional.Skip(offset + 1).ToList(), a.Keywords);
            test = x => PyOps.Truthy(TestFunctions.Apply(testName, x, rest));
        }
        else
        {
            test = PyOps.Truthy;
        }

        return new PyIterator("generator", PyOps.Iterate(v).Where(item => test(transform(item)) == select));
    }

    private static object? Replace(object? v, CallArgs a)
    {
        var b = a.Bind("replace", "old", "new", "count?");
        long count = -1;
        if (IsGiven(b[2]) && b[2] is not null)
        {
            count = b[2] is long l ? l : throw JinjaError.Type("replace() count must be an integer");
        }

        return PyString.Replace(SoftStr(v), SoftStr(b[0]), SoftStr(b[1]), count);
    }

    private static object? Reverse(object? v, CallArgs a)
    {
        a.Bind("reverse");
        switch (v)
        {
            case string s:
                return PyString.Slice(s, null, null, -1);
            case PyIterator:
                var list = PyOps.Iterate(v).ToList();
                list.Reverse();
                return list;
            default:
                var items = PyOps.Iterate(v).ToList();
                items.Reverse();
                return new PyIterator("reverseiterator", items);
        }
    }

    private static object? Sort(object? v, CallArgs a)
    {
        var b = a.Bind("sort", "reverse?", "case_sensitive?", "attribute?");
        bool caseSensitive = Flag(b[1], false);
        object? attribute = IsGiven(b[2]) ? b[2] : null;
        var getters = attribute is string s
            ? s.Split(',').Select(part => AttrGetter(part, caseSensitive ? null : IgnoreCase)).ToList()
            : [AttrGetter(attribute, caseSensitive ? null : IgnoreCase)];
        Func<object?, object?> key = item => getters.Count == 1 ? getters[0](item) : new PyTuple(getters.Select(g => g(item)).ToList());
        return StableSort(PyOps.Iterate(v), key, Flag(b[0], false));
    }

    private static object? Sum(object? v, CallArgs a)
    {
        var b = a.Bind("sum", "attribute?", "start?");
        object? total = IsGiven(b[1]) ? b[1] : 0L;
        IEnumerable<object?> items = PyOps.Iterate(v);
        if (IsGiven(b[0]) && b[0] is not null)
        {
            items = items.Select(AttrGetter(b[0]));
        }

        foreach (object? item in items)
        {
            total = PyOps.Binary("+", total, item);
        }

        return total;
    }

    private static object? ToJson(object? v, CallArgs a)
    {
        var b = a.Bind("tojson", "ensure_ascii?", "indent?", "separators?", "sort_keys?");
        bool ascii = Flag(b[0], false);
        string? indent = b[1] switch
        {
            Missing or null => null,
            long n => new string(' ', (int)Math.Max(0, n)),
            string s => s,
            _ => throw JinjaError.Type("indent must be an int or a string"),
        };
        string itemSep = indent is null ? ", " : ",";
        string keySep = ": ";
        if (b[2] is not (Missing or null))
        {
            var seps = PyOps.Iterate(b[2]).ToList();
            if (seps.Count != 2 || seps[0] is not string i || seps[1] is not string k)
            {
                throw JinjaError.Value("separators must be a pair of strings");
            }

            itemSep = i;
            keySep = k;
        }

        return PyJson.Dumps(v, ascii, indent, itemSep, keySep, Flag(b[3], false));
    }

    private static object? Trim(object? v, CallArgs a)
    {
        var b = a.Bind("trim", "chars?");
        string? chars = b[0] is Missing or null ? null : SoftStr(b[0]);
        return PyString.Strip(SoftStr(v), chars, true, true);
    }

    private static object? Unique(object? v, CallArgs a)
    {
        var b = a.Bind("unique", "case_sensitive?", "attribute?");
        var key = AttrGetter(IsGiven(b[1]) ? b[1] : null, Flag(b[0], false) ? null : IgnoreCase);
        IEnumerable<object?> Run()
        {
            var seen = new List<object?>();
            foreach (object? item in PyOps.Iterate(v))
            {
                object? k = key(item);
                if (k is not null && !PyKeyComparer.IsHashable(k))
                {
                    throw JinjaError.Type($"unhashable type: '{PyOps.TypeName(k)}'");
                }

                if (!seen.Any(s => PyOps.Equal(s, k)))
                {
                    seen.Add(k);
                    yield return item;
                }
            }
        }

        return new PyIterator("generator", Run());
    }
}
