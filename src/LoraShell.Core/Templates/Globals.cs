namespace LoraShell.Core.Templates;

/// <summary>
/// Names available to every template: Jinja's default globals plus the two transformers adds
/// (raise_exception and strftime_now). Context variables shadow these.
/// </summary>
internal sealed class Globals
{
    // Jinja's sandbox refuses ranges longer than this.
    private const long MaxRange = 100_000;

    private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);

    public Globals(Func<DateTime> now)
    {
        _values["raise_exception"] = new PyCallable("raise_exception", args =>
        {
            var b = args.Bind("raise_exception", "message");
            throw new JinjaError(ChatTemplateErrorKind.Raised, PyOps.Str(b[0]));
        });
        _values["strftime_now"] = new PyCallable("strftime_now", args =>
        {
            var b = args.Bind("strftime_now", "format");
            return b[0] is string format ? Strftime.Format(now(), format) : throw JinjaError.Type("strftime() argument 1 must be str");
        });
        _values["namespace"] = new PyCallable("namespace", Namespace);
        _values["range"] = new PyCallable("range", Range);
        _values["dict"] = new PyCallable("dict", Dict);
    }

    public object? Resolve(string name)
    {
        if (_values.TryGetValue(name, out object? value))
        {
            return value;
        }

        if (name is "lipsum" or "cycler" or "joiner")
        {
            throw JinjaError.Unsupported($"global '{name}'", $"the Jinja global '{name}' is not supported");
        }

        return new Undefined($"'{name}' is undefined");
    }

    private static object? Namespace(CallArgs args)
    {
        var ns = new Namespace();
        if (args.Positional.Count > 1)
        {
            throw JinjaError.Type("namespace expected at most 1 positional argument");
        }

        if (args.Positional.Count == 1)
        {
            if (args.Positional[0] is not PyDict d)
            {
                throw JinjaError.Unsupported("namespace(iterable)", "namespace() only accepts a dict as positional argument");
            }

            foreach (var (key, value) in d.Items)
            {
                ns.Set(key as string ?? throw JinjaError.Type("keywords must be strings"), value);
            }
        }

        foreach (var (key, value) in args.Keywords)
        {
            ns.Set(key, value);
        }

        return ns;
    }

    private static object? Range(CallArgs args)
    {
        args.NoKeywords();
        var numbers = args.Positional.Select(p => p switch
        {
            long l => l,
            bool b => b ? 1L : 0L,
            Undefined u => throw u.Fail(),
            _ => throw JinjaError.Type($"'{PyOps.TypeName(p)}' object cannot be interpreted as an integer"),
        }).ToList();
        var range = numbers.Count switch
        {
            1 => new PyRange(0, numbers[0], 1),
            2 => new PyRange(numbers[0], numbers[1], 1),
            3 => new PyRange(numbers[0], numbers[1], numbers[2]),
            _ => throw JinjaError.Type($"range expected 1 to 3 arguments, got {numbers.Count}"),
        };
        if (range.Length > MaxRange)
        {
            throw new JinjaError(ChatTemplateErrorKind.Runtime, "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        }

        return range;
    }

    private static object? Dict(CallArgs args)
    {
        var dict = new PyDict();
        if (args.Positional.Count > 1)
        {
            throw JinjaError.Type("dict expected at most 1 argument");
        }

        if (args.Positional.Count == 1)
        {
            object? source = args.Positional[0];
            if (source is PyDict d)
            {
                foreach (var (key, value) in d.Items)
                {
                    dict.Set(key, value);
                }
            }
            else
            {
                foreach (object? pair in PyOps.Iterate(source))
                {
                    var kv = PyOps.Iterate(pair).ToList();
                    if (kv.Count != 2)
                    {
                        throw JinjaError.Value("dictionary update sequence element has wrong length; 2 is required");
                    }

                    dict.Set(kv[0], kv[1]);
                }
            }
        }

        foreach (var (key, value) in args.Keywords)
        {
            dict.Set(key, value);
        }

        return dict;
    }
}
