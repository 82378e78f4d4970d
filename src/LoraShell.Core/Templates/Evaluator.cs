using System.Text;

namespace LoraShell.Core.Templates;

/// <summary>
/// Variable scope. For-loop iterations (and a loop's else block) get a fresh child scope, so a
/// <c>set</c> inside a loop never leaks out or into the next iteration, as in Jinja2; if-blocks share
/// the enclosing scope.
/// </summary>
internal sealed class Scope
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public Scope(Scope? parent) => Parent = parent;

    public Scope? Parent { get; }

    public void Set(string name, object? value) => _vars[name] = value;

    public bool TryGet(string name, out object? value)
    {
        for (Scope? s = this; s is not null; s = s.Parent)
        {
            if (s._vars.TryGetValue(name, out value))
            {
                return true;
            }
        }

        value = null;
        return false;
    }
}

/// <summary>Walks the syntax tree and writes the rendered text.</summary>
internal sealed class Evaluator
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private readonly Globals _globals;

    /// <summary>Statements executed plus loop iterations a rendering may take (a real chat template takes thousands).</summary>
    public const long MaxSteps = 5_000_000;
    /// <summary>Characters the output, or any string built with ~, may reach.</summary>
    public const int MaxChars = 8 << 20;
    public static readonly TimeSpan MaxTime = TimeSpan.FromSeconds(10);

    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private long _steps;

    public Evaluator(Globals globals) => _globals = globals;

    /// <summary>Counts a statement or loop iteration against the budget; the clock is read every 4,096.</summary>
    private void Tick()
    {
        if (++_steps > MaxSteps) throw JinjaError.Budget($"more than {MaxSteps:N0} statements and loop iterations");
        if ((_steps & 4095) == 0 && _clock.Elapsed > MaxTime) throw JinjaError.Budget($"more than {MaxTime.TotalSeconds:N0} s of rendering");
    }

    private static void CheckLength(StringBuilder text)
    {
        if (text.Length > MaxChars) throw JinjaError.Budget($"a text of more than {MaxChars:N0} characters");
    }

    public string Render(List<Stmt> body, Scope root)
    {
        var output = new StringBuilder();
        var flow = Exec(body, root, output);
        if (flow != Flow.Normal)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Syntax, "'break'/'continue' outside of a loop", 0, 0);
        }

        return output.ToString();
    }

    private static ChatTemplateException Located(JinjaError error, Node node) =>
        new(error.Kind, error.Message, node.Line, node.Column, error.Construct, error);

    private Flow Exec(List<Stmt> body, Scope scope, StringBuilder output)
    {
        foreach (Stmt stmt in body)
        {
            Flow flow;
            try
            {
                flow = ExecStatement(stmt, scope, output);
            }
            catch (JinjaError error)
            {
                throw Located(error, stmt);
            }

            if (flow != Flow.Normal)
            {
                return flow;
            }
        }

        return Flow.Normal;
    }

    private Flow ExecStatement(Stmt stmt, Scope scope, StringBuilder output)
    {
        Tick();
        switch (stmt)
        {
            case TextStmt text:
                output.Append(text.Text);
                CheckLength(output);
                return Flow.Normal;
            case OutputStmt o:
                object? value = Eval(o.Value, scope);
                try
                {
                    output.Append(PyOps.Str(value));
                    CheckLength(output);
                }
                catch (JinjaError error)
                {
                    throw Located(error, o.Value);
                }

                return Flow.Normal;
            case IfStmt i:
                foreach (var (test, branch) in i.Branches)
                {
                    if (Truthy(test, scope))
                    {
                        return Exec(branch, scope, output);
                    }
                }

                return i.Else is null ? Flow.Normal : Exec(i.Else, scope, output);
            case ForStmt f:
                ExecFor(f, scope, output);
                return Flow.Normal;
            case SetStmt s:
                Assign(s.Target, Eval(s.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt sb:
                var captured = new StringBuilder();
                var flow = Exec(sb.Body, scope, captured);
                scope.Set(sb.Name, captured.ToString());
                return flow;
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
            case GenerationStmt g:
                return Exec(g.Body, scope, output);
            default:
                throw new InvalidOperationException(stmt.GetType().Name);
        }
    }

    private bool Truthy(Expr test, Scope scope)
    {
        object? value = Eval(test, scope);
        return PyOps.Truthy(value);
    }

    private void ExecFor(ForStmt f, Scope scope, StringBuilder output)
    {
        object? iterable = Eval(f.Iterable, scope);
        List<object?> items;
        try
        {
            items = PyOps.Iterate(iterable).ToList();
        }
        catch (JinjaError error)
        {
            throw Located(error, f.Iterable);
        }

        if (f.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (object? item in items)
            {
                Tick();
                var filterScope = new Scope(scope);
                Assign(f.Target, item, filterScope);
                if (Truthy(f.Filter, filterScope))
                {
                    kept.Add(item);
                }
            }

            items = kept;
        }

        if (items.Count == 0)
        {
            if (f.Else is not null)
            {
                Exec(f.Else, new Scope(scope), output);
            }

            return;
        }

        var loop = new LoopContext(items);
        for (int i = 0; i < items.Count; i++)
        {
            Tick();
            loop.Index0 = i;
            var iterationScope = new Scope(scope);
            Assign(f.Target, items[i], iterationScope);
            iterationScope.Set("loop", loop);
            if (Exec(f.Body, iterationScope, output) == Flow.Break)
            {
                break;
            }
        }
    }

    private void Assign(Target target, object? value, Scope scope)
    {
        try
        {
            switch (target)
            {
                case NameTarget n:
                    scope.Set(n.Name, value);
                    break;
                case AttributeTarget a:
                    object? obj = Lookup(a.Object, scope);
                    if (obj is not Namespace ns)
                    {
                        throw new JinjaError(ChatTemplateErrorKind.Runtime, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
                    }

                    ns.Set(a.Attribute, value);
                    break;
                case TupleTarget t:
                    var values = PyOps.Iterate(value).ToList();
                    if (values.Count != t.Items.Count)
                    {
                        throw JinjaError.Value(values.Count > t.Items.Count
                            ? $"too many values to unpack (expected {t.Items.Count})"
                            : $"not enough values to unpack (expected {t.Items.Count}, got {values.Count})");
                    }

                    for (int i = 0; i < values.Count; i++)
                    {
                        Assign(t.Items[i], values[i], scope);
                    }

                    break;
            }
        }
        catch (JinjaError error)
        {
            throw Located(error, target);
        }
    }

    private object? Lookup(string name, Scope scope)
    {
        if (scope.TryGet(name, out object? value))
        {
            return value;
        }

        return _globals.Resolve(name);
    }

    // ---- expressions -----------------------------------------------------------------------------

    private object? Eval(Expr expr, Scope scope)
    {
        try
        {
            return EvalCore(expr, scope);
        }
        catch (JinjaError error)
        {
            throw Located(error, expr);
        }
    }

    private object? EvalCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr n:
                return Lookup(n.Name, scope);
            case ListExpr l:
                return l.Items.Select(i => Eval(i, scope)).ToList();
            case TupleExpr t:
                return new PyTuple(t.Items.Select(i => Eval(i, scope)).ToList());
            case DictExpr d:
                var dict = new PyDict();
                foreach (var (key, value) in d.Items)
                {
                    dict.Set(Eval(key, scope), Eval(value, scope));
                }

                return dict;
            case AttributeExpr a:
                return PyMethods.GetAttribute(Eval(a.Object, scope), a.Name);
            case ItemExpr item:
                return PyOps.GetItem(Eval(item.Object, scope), Eval(item.Index, scope));
            case SliceExpr s:
                object? container = Eval(s.Object, scope);
                return PyOps.Slice(container, SliceBound(s.Start, scope), SliceBound(s.Stop, scope), SliceBound(s.Step, scope));
            case CallExpr call:
                return Call(Eval(call.Callee, scope), EvalArgs(call.Args, scope));
            case FilterExpr f:
                return Filters.Apply(f.Name, Eval(f.Operand, scope), EvalArgs(f.Args, scope));
            case TestExpr t:
                return TestFunctions.Apply(t.Name, Eval(t.Operand, scope), EvalArgs(t.Args, scope));
            case NotExpr n:
                return !Truthy(n.Operand, scope);
            case UnaryExpr u:
                return PyOps.Negate(Eval(u.Operand, scope), u.Negate);
            case BinaryExpr b:
                return PyOps.Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope));
            case ConcatExpr c:
                var sb = new StringBuilder();
                foreach (Expr part in c.Items)
                {
                    sb.Append(PyOps.Str(Eval(part, scope)));
                    CheckLength(sb);
                }

                return sb.ToString();
            case AndExpr a:
                object? left = Eval(a.Left, scope);
                return PyOps.Truthy(left) ? Eval(a.Right, scope) : left;
            case OrExpr o:
                object? first = Eval(o.Left, scope);
                return PyOps.Truthy(first) ? first : Eval(o.Right, scope);
            case CompareExpr c:
                return Compare(c, scope);
            case CondExpr c:
                if (Truthy(c.Test, scope))
                {
                    return Eval(c.Then, scope);
                }

                return c.Else is null
                    ? new Undefined($"the inline if-expression on line {c.Line} evaluated to false and no else section was defined.")
                    : Eval(c.Else, scope);
            default:
                throw new InvalidOperationException(expr.GetType().Name);
        }
    }

    private long? SliceBound(Expr? expr, Scope scope)
    {
        if (expr is null)
        {
            return null;
        }

        return Eval(expr, scope) switch
        {
            null => null,
            long l => l,
            bool b => b ? 1 : 0,
            Undefined u => throw u.Fail(),
            var other => throw JinjaError.Type($"slice indices must be integers or None, not {PyOps.TypeName(other)}"),
        };
    }

    private CallArgs EvalArgs(Arguments args, Scope scope)
    {
        var positional = args.Positional.Select(a => Eval(a, scope)).ToList();
        var keywords = args.Keywords.Select(k => new KeyValuePair<string, object?>(k.Name, Eval(k.Value, scope))).ToList();
        return new CallArgs(positional, keywords);
    }

    private static object? Call(object? callee, CallArgs args) => callee switch
    {
        PyCallable c => c.Invoke(args),
        Undefined u => throw u.Fail(),
        _ => throw JinjaError.Type($"'{PyOps.TypeName(callee)}' object is not callable"),
    };

    private bool Compare(CompareExpr c, Scope scope)
    {
        object? left = Eval(c.First, scope);
        foreach (var (op, operand) in c.Rest)
        {
            object? right = Eval(operand, scope);
            bool result = op switch
            {
                "==" => PyOps.Equal(left, right),
                "!=" => !PyOps.Equal(left, right),
                "<" => PyOps.Compare(left, right, op) < 0,
                ">" => PyOps.Compare(left, right, op) > 0,
                "<=" => PyOps.Compare(left, right, op) <= 0,
                ">=" => PyOps.Compare(left, right, op) >= 0,
                "in" => PyOps.Contains(right, left),
                "notin" => !PyOps.Contains(right, left),
                _ => throw new InvalidOperationException(op),
            };
            if (!result)
            {
                return false;
            }

            left = right;
        }

        return true;
    }
}
