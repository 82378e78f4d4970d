using System.Globalization;
using System.Text;

namespace LoraShell.Core.Templates;

/// <summary>Python semantics for the operations templates perform on values.</summary>
internal static class PyOps
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        Undefined => "Undefined",
        PyIterator it => it.TypeName,
        PyDictView view => "dict_" + view.Kind,
        PyRange => "range",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        PyCallable => "builtin_function_or_method",
        _ => v.GetType().Name,
    };

    // ---- truthiness / str / repr ---------------------------------------------------------------

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0.0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        PyTuple t => t.Items.Count > 0,
        PyDict d => d.Count > 0,
        Undefined => false,
        PyDictView view => view.Dict.Count > 0,
        PyRange r => r.Length > 0,
        _ => true,
    };

    /// <summary>Python str(): what {{ value }}, ~ and |string produce.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? v, int depth)
    {
        if (depth > 200)
        {
            throw JinjaError.Unsupported("deeply nested value", "value nesting too deep to print");
        }

        switch (v)
        {
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case string s: sb.Append(PyString.Repr(s)); break;
            case Undefined: sb.Append("Undefined"); break;
            case List<object?> list:
                AppendSequence(sb, "[", list, "]", depth);
                break;
            case PyTuple t:
                AppendSequence(sb, "(", t.Items, t.Items.Count == 1 ? ",)" : ")", depth);
                break;
            case PyDict dict:
                AppendDict(sb, dict, depth);
                break;
            case PyDictView view:
                sb.Append("dict_").Append(view.Kind).Append('(');
                AppendSequence(sb, "[", view.Iterate().ToList(), "]", depth);
                sb.Append(')');
                break;
            case PyRange r:
                sb.Append("range(").Append(r.Start).Append(", ").Append(r.Stop);
                if (r.Step != 1)
                {
                    sb.Append(", ").Append(r.Step);
                }

                sb.Append(')');
                break;
            case Namespace ns:
                var attrs = new PyDict();
                foreach (string key in ns.Order)
                {
                    attrs.Set(key, ns.Attributes[key]);
                }

                sb.Append("<Namespace ");
                AppendDict(sb, attrs, depth);
                sb.Append('>');
                break;
            case LoopContext loop:
                sb.Append("<LoopContext ").Append(loop.Index0 + 1).Append('/').Append(loop.Length).Append('>');
                break;
            default:
                // Python would print a memory address here; no prompt should depend on that.
                throw JinjaError.Unsupported($"printing a {TypeName(v)}", $"converting a {TypeName(v)} object to text is not supported");
        }
    }

    private static void AppendSequence(StringBuilder sb, string open, IReadOnlyList<object?> items, string close, int depth)
    {
        sb.Append(open);
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            AppendRepr(sb, items[i], depth + 1);
        }

        sb.Append(close);
    }

    private static void AppendDict(StringBuilder sb, PyDict dict, int depth)
    {
        sb.Append('{');
        bool first = true;
        foreach (var (key, value) in dict.Items)
        {
            if (!first)
            {
                sb.Append(", ");
            }

            first = false;
            AppendRepr(sb, key, depth + 1);
            sb.Append(": ");
            AppendRepr(sb, value, depth + 1);
        }

        sb.Append('}');
    }

    /// <summary>Python repr(float): shortest round-trip digits, scientific outside 1e-4 &lt;= |x| &lt; 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }

        string r = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = r[0] == '-';
        if (negative)
        {
            r = r[1..];
        }

        int exp = 0;
        int e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exp = int.Parse(r[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..e];
        }

        int dot = r.IndexOf('.');
        string digits = dot >= 0 ? r.Remove(dot, 1) : r;
        int pointPos = (dot >= 0 ? dot : r.Length) + exp;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0')
        {
            lead++;
        }

        digits = digits[lead..];
        pointPos -= lead;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        int sciExp = pointPos - 1;
        var sb = new StringBuilder();
        if (negative)
        {
            sb.Append('-');
        }

        if (sciExp >= -4 && sciExp < 16)
        {
            if (pointPos <= 0)
            {
                sb.Append("0.").Append('0', -pointPos).Append(digits);
            }
            else if (pointPos >= digits.Length)
            {
                sb.Append(digits).Append('0', pointPos - digits.Length).Append(".0");
            }
            else
            {
                sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
            }
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
            {
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            }

            sb.Append('e').Append(sciExp < 0 ? '-' : '+').Append(Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    // ---- equality / ordering -------------------------------------------------------------------

    private static bool IsNumber(object? v) => v is long or double or bool;

    private static double AsDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException(),
    };

    private static long AsLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException(),
    };

    private static bool IsInt(object? v) => v is long or bool;

    public static bool Equal(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInt(a) && IsInt(b) ? AsLong(a) == AsLong(b) : AsDouble(a) == AsDouble(b);
        }

        switch (a)
        {
            case null: return b is null;
            case string s: return b is string t && s == t;
            case Undefined: return b is Undefined;
            case List<object?> x when b is List<object?> y:
                return SequenceEqual(x, y);
            case PyTuple x when b is PyTuple y:
                return SequenceEqual(x.Items, y.Items);
            case PyDict x when b is PyDict y:
                if (x.Count != y.Count)
                {
                    return false;
                }

                foreach (var (key, value) in x.Items)
                {
                    if (!y.TryGet(key, out object? other) || !Equal(value, other))
                    {
                        return false;
                    }
                }

                return true;
            case PyRange x when b is PyRange y:
                return SequenceEqual(x.Iterate().ToList(), y.Iterate().ToList());
            default:
                return ReferenceEquals(a, b);
        }
    }

    private static bool SequenceEqual(IReadOnlyList<object?> x, IReadOnlyList<object?> y)
    {
        if (x.Count != y.Count)
        {
            return false;
        }

        for (int i = 0; i < x.Count; i++)
        {
            if (!Equal(x[i], y[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Python ordering for &lt; &gt; &lt;= &gt;= and sorting; TypeError for unorderable pairs.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (IsInt(a) && IsInt(b))
            {
                return AsLong(a).CompareTo(AsLong(b));
            }

            double x = AsDouble(a);
            double y = AsDouble(b);
            if (double.IsNaN(x) || double.IsNaN(y))
            {
                throw JinjaError.Unsupported("NaN comparison", "ordering comparisons with NaN are not supported");
            }

            return x.CompareTo(y);
        }

        if (a is string s && b is string t)
        {
            return PyString.Compare(s, t);
        }

        IReadOnlyList<object?>? la = a switch { List<object?> l => l, PyTuple tu => tu.Items, _ => null };
        IReadOnlyList<object?>? lb = b switch { List<object?> l => l, PyTuple tu => tu.Items, _ => null };
        if (la is not null && lb is not null && a!.GetType() == b!.GetType())
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!Equal(la[i], lb[i]))
                {
                    return Compare(la[i], lb[i], op);
                }
            }

            return la.Count.CompareTo(lb.Count);
        }

        if (a is Undefined u)
        {
            throw u.Fail();
        }

        if (b is Undefined u2)
        {
            throw u2.Fail();
        }

        throw JinjaError.Type($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    // ---- arithmetic ----------------------------------------------------------------------------

    private static void FailUndefined(object? a, object? b)
    {
        if (a is Undefined u)
        {
            throw u.Fail();
        }

        if (b is Undefined u2)
        {
            throw u2.Fail();
        }
    }

    private static JinjaError Unsupported(string op, object? a, object? b) =>
        JinjaError.Type($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");

    private static long Checked(Func<long> f)
    {
        try
        {
            return f();
        }
        catch (OverflowException)
        {
            throw JinjaError.Unsupported("big integer", "integer result does not fit in 64 bits (Python ints are unbounded)");
        }
    }

    public static object? Binary(string op, object? a, object? b)
    {
        FailUndefined(a, b);
        switch (op)
        {
            case "+":
                if (IsInt(a) && IsInt(b))
                {
                    return Checked(() => checked(AsLong(a) + AsLong(b)));
                }

                if (IsNumber(a) && IsNumber(b))
                {
                    return AsDouble(a) + AsDouble(b);
                }

                if (a is string s1 && b is string s2)
                {
                    return s1 + s2;
                }

                if (a is List<object?> l1 && b is List<object?> l2)
                {
                    return l1.Concat(l2).ToList();
                }

                if (a is PyTuple t1 && b is PyTuple t2)
                {
                    return new PyTuple(t1.Items.Concat(t2.Items).ToList());
                }

                if (a is string || b is string)
                {
                    throw JinjaError.Type(a is string
                        ? $"can only concatenate str (not \"{TypeName(b)}\") to str"
                        : $"unsupported operand type(s) for +: '{TypeName(a)}' and 'str'");
                }

                throw Unsupported("+", a, b);
            case "-":
                if (IsInt(a) && IsInt(b))
                {
                    return Checked(() => checked(AsLong(a) - AsLong(b)));
                }

                if (IsNumber(a) && IsNumber(b))
                {
                    return AsDouble(a) - AsDouble(b);
                }

                throw Unsupported("-", a, b);
            case "*":
                if (IsInt(a) && IsInt(b))
                {
                    return Checked(() => checked(AsLong(a) * AsLong(b)));
                }

                if (IsNumber(a) && IsNumber(b))
                {
                    return AsDouble(a) * AsDouble(b);
                }

                if (a is string rs && IsInt(b))
                {
                    return PyString.Repeat(rs, AsLong(b));
                }

                if (b is string rs2 && IsInt(a))
                {
                    return PyString.Repeat(rs2, AsLong(a));
                }

                if (a is List<object?> rl && IsInt(b))
                {
                    long times = AsLong(b);
                    if (times * rl.Count > 10_000_000)
                    {
                        throw JinjaError.Unsupported("list repetition", "result too large");
                    }

                    return Enumerable.Repeat(rl, (int)Math.Max(0, times)).SelectMany(x => x).ToList();
                }

                throw Unsupported("*", a, b);
            case "/":
                if (IsNumber(a) && IsNumber(b))
                {
                    double divisor = AsDouble(b);
                    if (divisor == 0)
                    {
                        throw new JinjaError(ChatTemplateErrorKind.Runtime, "ZeroDivisionError: division by zero");
                    }

                    return AsDouble(a) / divisor;
                }

                throw Unsupported("/", a, b);
            case "//":
            case "%":
                if (IsInt(a) && IsInt(b))
                {
                    long x = AsLong(a);
                    long y = AsLong(b);
                    if (y == 0)
                    {
                        throw new JinjaError(ChatTemplateErrorKind.Runtime, "ZeroDivisionError: integer division or modulo by zero");
                    }

                    long q = Checked(() => checked(x / y));
                    long r = x % y;
                    if (r != 0 && ((r < 0) != (y < 0)))
                    {
                        q--;
                        r += y;
                    }

                    return op == "//" ? q : r;
                }

                if (IsNumber(a) && IsNumber(b))
                {
                    throw JinjaError.Unsupported($"float {op}", $"float '{op}' is not supported");
                }

                if (op == "%" && a is string)
                {
                    throw JinjaError.Unsupported("string % formatting", "printf-style string formatting is not supported");
                }

                throw Unsupported(op, a, b);
            case "**":
                if (IsInt(a) && IsInt(b) && AsLong(b) >= 0)
                {
                    long bas = AsLong(a);
                    long ex = AsLong(b);
                    return Checked(() =>
                    {
                        long result = 1;
                        for (long i = 0; i < ex; i++)
                        {
                            result = checked(result * bas);
                        }

                        return result;
                    });
                }

                if (IsNumber(a) && IsNumber(b))
                {
                    throw JinjaError.Unsupported("float **", "float powers are not supported");
                }

                throw Unsupported("** or pow()", a, b);
            default:
                throw new InvalidOperationException(op);
        }
    }

    // Arms are cast to object so C# does not unify long and double into double.
    public static object? Negate(object? v, bool negate) => v switch
    {
        bool or long => (object)(negate ? Checked(() => checked(-AsLong(v))) : AsLong(v)),
        double d => (object)(negate ? -d : d),
        Undefined u => throw u.Fail(),
        _ => throw JinjaError.Type($"bad operand type for unary {(negate ? "-" : "+")}: '{TypeName(v)}'"),
    };

    // ---- containers ------------------------------------------------------------------------------

    /// <summary>Python iter(): strings by code point, dicts by key, undefined as empty.</summary>
    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        PyTuple t => t.Items,
        string s => PyString.Chars(s),
        PyDict d => d.Keys.Select(k => (object?)k).ToList(),
        PyDictView view => view.Iterate(),
        PyRange r => r.Iterate(),
        PyIterator it => it.Consume(),
        Undefined => [],
        _ => throw JinjaError.Type($"'{TypeName(v)}' object is not iterable"),
    };

    public static long Length(object? v) => v switch
    {
        string s => PyString.Length(s),
        List<object?> l => l.Count,
        PyTuple t => t.Items.Count,
        PyDict d => d.Count,
        PyDictView view => view.Dict.Count,
        PyRange r => r.Length,
        Undefined => 0,
        _ => throw JinjaError.Type($"object of type '{TypeName(v)}' has no len()"),
    };

    /// <summary>Python <c>needle in haystack</c>.</summary>
    public static bool Contains(object? haystack, object? needle)
    {
        switch (haystack)
        {
            case string s:
                if (needle is string n)
                {
                    return s.Contains(n, StringComparison.Ordinal);
                }

                if (needle is Undefined u)
                {
                    throw u.Fail();
                }

                throw JinjaError.Type($"'in <string>' requires string as left operand, not {TypeName(needle)}");
            case PyDict d:
                if (needle is not null && !PyKeyComparer.IsHashable(needle) && needle is not Undefined)
                {
                    throw JinjaError.Type($"unhashable type: '{TypeName(needle)}'");
                }

                return d.ContainsKey(needle);
            case PyDictView { Kind: "keys" } view:
                return view.Dict.ContainsKey(needle);
            case Undefined:
                return false;
            default:
                foreach (object? item in Iterate(haystack))
                {
                    if (Equal(item, needle))
                    {
                        return true;
                    }
                }

                return false;
        }
    }

    /// <summary>Python value[index] with Jinja's fallback to undefined for missing items.</summary>
    public static object? GetItem(object? container, object? key)
    {
        switch (container)
        {
            case Undefined u:
                throw u.Fail();
            case PyDict d:
                if (d.TryGet(key, out object? value))
                {
                    return value;
                }

                return key is string attr ? PyMethods.GetAttribute(container, attr, fromSubscript: true) : MissingItem(container, key);
            case List<object?> or PyTuple or string or PyRange when key is long or bool:
                return IndexSequence(container, key is bool b ? (b ? 1 : 0) : (long)key);
            case LoopContext loop when key is string name:
                return loop.Get(name);
            case Namespace ns when key is string name:
                return PyMethods.GetAttribute(ns, name, fromSubscript: true);
            default:
                if (key is string s)
                {
                    return PyMethods.GetAttribute(container, s, fromSubscript: true);
                }

                return MissingItem(container, key);
        }
    }

    private static Undefined MissingItem(object? container, object? key) =>
        new($"{Describe(container)} has no element {Repr(key)}");

    public static string Describe(object? v) => $"'{TypeName(v)} object'";

    private static object? IndexSequence(object? container, long index)
    {
        switch (container)
        {
            case string s:
                return PyString.Index(s, index) is { } ch ? ch : MissingItem(container, index);
            case PyRange r:
                long len = r.Length;
                long i = index < 0 ? index + len : index;
                return i < 0 || i >= len ? MissingItem(container, index) : r.Start + (i * r.Step);
            default:
                IReadOnlyList<object?> items = container is PyTuple t ? t.Items : (List<object?>)container!;
                long k = index < 0 ? index + items.Count : index;
                return k < 0 || k >= items.Count ? MissingItem(container, index) : items[(int)k];
        }
    }

    public static object? Slice(object? container, long? start, long? stop, long? step)
    {
        switch (container)
        {
            case Undefined u:
                throw u.Fail();
            case string s:
                return PyString.Slice(s, start, stop, step);
            case List<object?> l:
                return PySlice.Indices(l.Count, start, stop, step).Select(i => l[i]).ToList();
            case PyTuple t:
                return new PyTuple(PySlice.Indices(t.Items.Count, start, stop, step).Select(i => t.Items[i]).ToList());
            case PyRange:
                throw JinjaError.Unsupported("range slicing", "slicing a range is not supported");
            default:
                return new Undefined($"{Describe(container)} is not subscriptable");
        }
    }
}
