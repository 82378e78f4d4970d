namespace LoraShell.Core.Templates;

/// <summary>Jinja's built-in tests (<c>value is name</c>).</summary>
internal static class TestFunctions
{
    private static readonly HashSet<string> JinjaBuiltins =
    [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter", "float",
        "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping", "ne", "none",
        "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper", "==", "!=", ">", ">=", "<", "<=",
    ];

    private static readonly Dictionary<string, Func<object?, object?[], bool>> Implemented = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v is null,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["number"] = (v, _) => v is long or double or bool,
        ["string"] = (v, _) => v is string,
        ["mapping"] = (v, _) => v is PyDict,
        ["iterable"] = (v, _) => v is string or List<object?> or PyTuple or PyDict or PyDictView or PyRange or PyIterator
            or Undefined or LoopContext,
        ["sequence"] = (v, _) => v is string or List<object?> or PyTuple or PyDict or PyRange or Undefined,
        ["callable"] = (v, _) => v is PyCallable or Undefined or LoopContext,
        ["escaped"] = (_, _) => false,
        ["odd"] = (v, _) => PyEquals(Mod(v, 2L), 1L),
        ["even"] = (v, _) => PyEquals(Mod(v, 2L), 0L),
        ["divisibleby"] = (v, a) => PyEquals(Mod(v, a[0]), 0L),
        ["lower"] = (v, _) => PyString.IsLower(PyOps.Str(v)),
        ["upper"] = (v, _) => PyString.IsUpper(PyOps.Str(v)),
        ["in"] = (v, a) => PyOps.Contains(a[0], v),
        ["sameas"] = SameAs,
        ["eq"] = (v, a) => PyOps.Equal(v, a[0]),
        ["equalto"] = (v, a) => PyOps.Equal(v, a[0]),
        ["=="] = (v, a) => PyOps.Equal(v, a[0]),
        ["ne"] = (v, a) => !PyOps.Equal(v, a[0]),
        ["!="] = (v, a) => !PyOps.Equal(v, a[0]),
        ["lt"] = (v, a) => PyOps.Compare(v, a[0], "<") < 0,
        ["lessthan"] = (v, a) => PyOps.Compare(v, a[0], "<") < 0,
        ["<"] = (v, a) => PyOps.Compare(v, a[0], "<") < 0,
        ["le"] = (v, a) => PyOps.Compare(v, a[0], "<=") <= 0,
        ["<="] = (v, a) => PyOps.Compare(v, a[0], "<=") <= 0,
        ["gt"] = (v, a) => PyOps.Compare(v, a[0], ">") > 0,
        ["greaterthan"] = (v, a) => PyOps.Compare(v, a[0], ">") > 0,
        [">"] = (v, a) => PyOps.Compare(v, a[0], ">") > 0,
        ["ge"] = (v, a) => PyOps.Compare(v, a[0], ">=") >= 0,
        [">="] = (v, a) => PyOps.Compare(v, a[0], ">=") >= 0,
    };

    // Number of arguments each test takes after the tested value.
    private static readonly HashSet<string> OneArgument =
    [
        "divisibleby", "in", "sameas", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt",
        "greaterthan", ">", "ge", ">=",
    ];

    public static bool IsImplemented(string name) => Implemented.ContainsKey(name);

    public static void Validate(string name, Token at)
    {
        if (Implemented.ContainsKey(name))
        {
            return;
        }

        string construct = $"test '{name}'";
        if (JinjaBuiltins.Contains(name))
        {
            throw new ChatTemplateException(
                ChatTemplateErrorKind.Unsupported, $"the Jinja test '{name}' is not implemented", at.Line, at.Column, construct);
        }

        throw new ChatTemplateException(ChatTemplateErrorKind.Syntax, $"No test named '{name}'.", at.Line, at.Column, construct);
    }

    public static object? Apply(string name, object? value, CallArgs args)
    {
        int expected = OneArgument.Contains(name) ? 1 : 0;
        object?[] bound = expected == 1 ? args.Bind(name, "other") : args.Bind(name);
        return Implemented[name](value, bound);
    }

    private static bool PyEquals(object? a, object? b) => PyOps.Equal(a, b);

    private static object? Mod(object? v, object? divisor) => v switch
    {
        double d when divisor is long or double => FloatMod(d, Convert.ToDouble(divisor)),
        long when divisor is double dd => FloatMod(Convert.ToDouble(v), dd),
        _ => PyOps.Binary("%", v, divisor),
    };

    private static double FloatMod(double a, double b)
    {
        if (b == 0)
        {
            throw new JinjaError(ChatTemplateErrorKind.Runtime, "ZeroDivisionError: float modulo");
        }

        double r = a % b;
        if (r != 0 && (r < 0) != (b < 0))
        {
            r += b;
        }

        return r;
    }

    private static bool SameAs(object? v, object?[] a)
    {
        object? other = a[0];
        if (v is null || other is null || v is bool || other is bool)
        {
            return (v is null && other is null) || (v is bool x && other is bool y && x == y);
        }

        throw JinjaError.Unsupported("test 'sameas'", "'sameas' is only supported against none, true or false");
    }
}
