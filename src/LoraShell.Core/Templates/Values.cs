namespace LoraShell.Core.Templates;

// Runtime values mirror the Python objects a chat template sees:
//   null -> None, bool, long -> int, double -> float, string -> str, List<object?> -> list,
//   PyTuple, PyDict (insertion ordered), Undefined, plus the few Jinja/Python helper objects below.

/// <summary>Jinja's default Undefined: prints as "", is falsy, iterates as empty, fails on attribute access.</summary>
internal sealed class Undefined
{
    public Undefined(string hint) => Hint = hint;

    /// <summary>Text for error messages, e.g. "'foo' is undefined" or "'dict object' has no attribute 'x'".</summary>
    public string Hint { get; }

    public JinjaError Fail() => JinjaError.Undefined(Hint);
}

internal sealed class PyTuple
{
    public PyTuple(IReadOnlyList<object?> items) => Items = items;

    public IReadOnlyList<object?> Items { get; }
}

/// <summary>A Python dict: insertion ordered, keys compared with Python equality (1 == 1.0 == True).</summary>
internal sealed class PyDict
{
    private readonly OrderedDictionary<object, object?> _items = new(PyKeyComparer.Instance);

    public int Count => _items.Count;

    public IEnumerable<object> Keys => _items.Keys;

    public IEnumerable<object?> Values => _items.Values;

    public IEnumerable<KeyValuePair<object, object?>> Items => _items;

    public void Set(object? key, object? value) => _items[CheckKey(key)] = value;

    public bool TryGet(object? key, out object? value)
    {
        value = null;
        return key is not null && PyKeyComparer.IsHashable(key) && _items.TryGetValue(key, out value);
    }

    public bool ContainsKey(object? key) => TryGet(key, out _);

    private static object CheckKey(object? key)
    {
        if (key is null)
        {
            throw JinjaError.Unsupported("dict with None key", "None as a dictionary key is not supported");
        }

        if (!PyKeyComparer.IsHashable(key))
        {
            throw JinjaError.Type($"unhashable type: '{PyOps.TypeName(key)}'");
        }

        return key;
    }
}

internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public static bool IsHashable(object key) => key switch
    {
        string or long or double or bool => true,
        PyTuple t => t.Items.All(i => i is not null && IsHashable(i)),
        _ => false,
    };

    public new bool Equals(object? x, object? y) => PyOps.Equal(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9.2e18 => ((long)d).GetHashCode(),
        double d => d.GetHashCode(),
        string s => StringComparer.Ordinal.GetHashCode(s),
        PyTuple t => t.Items.Aggregate(17, (h, i) => (h * 31) + (i is null ? 0 : GetHashCode(i))),
        _ => 0,
    };
}

/// <summary>
/// A one-shot Python iterator (generators from select/map/items/reverse...). Like Python it has no
/// length, cannot be indexed, is always truthy, and yields nothing once consumed.
/// </summary>
internal sealed class PyIterator
{
    private IEnumerator<object?>? _source;

    public PyIterator(string typeName, IEnumerable<object?> source)
    {
        TypeName = typeName;
        _source = source.GetEnumerator();
    }

    public string TypeName { get; }

    public IEnumerable<object?> Consume()
    {
        var source = _source;
        _source = null;
        if (source is null)
        {
            yield break;
        }

        using (source)
        {
            while (source.MoveNext())
            {
                yield return source.Current;
            }
        }
    }
}

/// <summary>dict.items() / keys() / values(): re-iterable, sized, printable as Python prints them.</summary>
internal sealed class PyDictView
{
    public PyDictView(string kind, PyDict dict)
    {
        Kind = kind;
        Dict = dict;
    }

    public string Kind { get; }
    public PyDict Dict { get; }

    public IEnumerable<object?> Iterate() => Kind switch
    {
        "items" => Dict.Items.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList(),
        "keys" => Dict.Keys.Select(k => (object?)k).ToList(),
        _ => Dict.Values.ToList(),
    };
}

internal sealed class PyRange
{
    public PyRange(long start, long stop, long step)
    {
        if (step == 0)
        {
            throw JinjaError.Value("range() arg 3 must not be zero");
        }

        Start = start;
        Stop = stop;
        Step = step;
    }

    public long Start { get; }
    public long Stop { get; }
    public long Step { get; }

    public long Length => Step > 0
        ? Math.Max(0, (Stop - Start + Step - 1) / Step)
        : Math.Max(0, (Start - Stop - Step - 1) / -Step);

    public IEnumerable<object?> Iterate()
    {
        long n = Length;
        if (n > 10_000_000)
        {
            throw JinjaError.Unsupported("range()", "range too large");
        }

        for (long i = 0; i < n; i++)
        {
            yield return Start + (i * Step);
        }
    }
}

/// <summary>Jinja's namespace(): the only object templates may assign attributes to.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);

    // Insertion order, for printing like Python's dict repr.
    public List<string> Order { get; } = [];

    public void Set(string name, object? value)
    {
        if (!Attributes.ContainsKey(name))
        {
            Order.Add(name);
        }

        Attributes[name] = value;
    }
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopContext
{
    private readonly IReadOnlyList<object?> _items;

    public LoopContext(IReadOnlyList<object?> items) => _items = items;

    public int Index0 { get; set; }

    public int Length => _items.Count;

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Length - Index0),
        "revindex0" => (long)(Length - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Length - 1,
        "length" => (long)Length,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? _items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 < Length - 1 ? _items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new PyCallable("loop.cycle", args =>
        {
            args.NoKeywords();
            if (args.Positional.Count == 0)
            {
                throw JinjaError.Type("no items for cycling given");
            }

            return args.Positional[Index0 % args.Positional.Count];
        }),
        "changed" => throw JinjaError.Unsupported("loop.changed", "loop.changed() is not supported"),
        _ => new Undefined($"'LoopContext object' has no attribute '{name}'"),
    };
}

/// <summary>Positional and keyword arguments of a call, with Python-style binding helpers.</summary>
internal sealed class CallArgs
{
    public CallArgs(List<object?> positional, List<KeyValuePair<string, object?>> keywords)
    {
        Positional = positional;
        Keywords = keywords;
    }

    public List<object?> Positional { get; }
    public List<KeyValuePair<string, object?>> Keywords { get; }

    public void NoKeywords()
    {
        if (Keywords.Count > 0)
        {
            throw JinjaError.Type($"unexpected keyword argument '{Keywords[0].Key}'");
        }
    }

    /// <summary>
    /// Binds arguments to a Python signature. Names ending in '?' are optional and come back as
    /// <see cref="Missing"/> when absent.
    /// </summary>
    public object?[] Bind(string function, params string[] parameters)
    {
        var bound = new object?[parameters.Length];
        var assigned = new bool[parameters.Length];
        if (Positional.Count > parameters.Length)
        {
            throw JinjaError.Type($"{function}() takes at most {parameters.Length} arguments ({Positional.Count} given)");
        }

        for (int i = 0; i < Positional.Count; i++)
        {
            bound[i] = Positional[i];
            assigned[i] = true;
        }

        foreach (var (key, value) in Keywords)
        {
            int idx = Array.FindIndex(parameters, p => p.TrimEnd('?') == key);
            if (idx < 0)
            {
                throw JinjaError.Type($"{function}() got an unexpected keyword argument '{key}'");
            }

            if (assigned[idx])
            {
                throw JinjaError.Type($"{function}() got multiple values for argument '{key}'");
            }

            bound[idx] = value;
            assigned[idx] = true;
        }

        for (int i = 0; i < parameters.Length; i++)
        {
            if (!assigned[i])
            {
                if (!parameters[i].EndsWith('?'))
                {
                    throw JinjaError.Type($"{function}() missing required argument '{parameters[i]}'");
                }

                bound[i] = Missing.Value;
            }
        }

        return bound;
    }
}

/// <summary>Marks an optional argument that was not passed.</summary>
internal sealed class Missing
{
    public static readonly Missing Value = new();

    private Missing()
    {
    }
}

/// <summary>A callable value: a global function or a bound method such as <c>content.strip</c>.</summary>
internal sealed class PyCallable
{
    public PyCallable(string name, Func<CallArgs, object?> invoke)
    {
        Name = name;
        Invoke = invoke;
    }

    public string Name { get; }
    public Func<CallArgs, object?> Invoke { get; }
}
