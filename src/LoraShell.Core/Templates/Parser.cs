namespace LoraShell.Core.Templates;

/// <summary>Recursive-descent parser following Jinja2's grammar and operator precedence.</summary>
internal sealed class Parser
{
    // Tags Jinja knows but this interpreter deliberately does not implement.
    private static readonly HashSet<string> UnsupportedTags =
        ["macro", "call", "filter", "include", "import", "from", "extends", "block", "with", "autoescape", "raw", "do", "trans"];

    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", ">", "<=", ">="];

    // Deeper nesting than any real template needs; guards the recursive parser and evaluator against
    // stack overflow on hostile input.
    private const int MaxNesting = 200;

    private readonly List<Token> _tokens;
    private int _index;
    private int _depth;

    private Parser(List<Token> tokens) => _tokens = tokens;

    public static List<Stmt> Parse(string source)
    {
        var parser = new Parser(Lexer.Tokenize(source));
        var body = parser.Subparse(null);
        return body;
    }

    private Token Current => _tokens[_index];

    private Token Peek(int offset = 1) => _tokens[Math.Min(_index + offset, _tokens.Count - 1)];

    private Token Advance() => _tokens[_index++];

    private static ChatTemplateException SyntaxError(string message, Token at, string? construct = null) =>
        new(ChatTemplateErrorKind.Syntax, message, at.Line, at.Column, construct);

    private static ChatTemplateException Unsupported(string construct, string message, Token at) =>
        new(ChatTemplateErrorKind.Unsupported, message, at.Line, at.Column, construct);

    private Token Expect(TokenKind kind, string what)
    {
        if (Current.Kind != kind)
        {
            throw SyntaxError($"expected {what}, got {Current.Describe()}", Current);
        }

        return Advance();
    }

    private Token ExpectOperator(string op)
    {
        if (!Current.IsOperator(op))
        {
            throw SyntaxError($"expected '{op}', got {Current.Describe()}", Current);
        }

        return Advance();
    }

    private Token ExpectName(string name)
    {
        if (!Current.IsName(name))
        {
            throw SyntaxError($"expected '{name}', got {Current.Describe()}", Current);
        }

        return Advance();
    }

    private bool SkipName(string name)
    {
        if (Current.IsName(name))
        {
            _index++;
            return true;
        }

        return false;
    }

    private bool SkipOperator(string op)
    {
        if (Current.IsOperator(op))
        {
            _index++;
            return true;
        }

        return false;
    }

    // ---- statements ------------------------------------------------------------------------------

    /// <summary>Parses until a block tag whose name is in <paramref name="endTags"/>; leaves that name as the current token.</summary>
    private List<Stmt> Subparse(string[]? endTags)
    {
        EnterNesting();
        try
        {
            return SubparseBody(endTags);
        }
        finally
        {
            _depth--;
        }
    }

    private List<Stmt> SubparseBody(string[]? endTags)
    {
        var body = new List<Stmt>();
        while (true)
        {
            Token tok = Current;
            switch (tok.Kind)
            {
                case TokenKind.Data:
                    Advance();
                    body.Add(new TextStmt(tok.Text, tok.Line, tok.Column));
                    break;
                case TokenKind.VariableBegin:
                    Advance();
                    Expr value = ParseTuple();
                    Expect(TokenKind.VariableEnd, "'}}'");
                    body.Add(new OutputStmt(value, tok.Line, tok.Column));
                    break;
                case TokenKind.BlockBegin:
                    Advance();
                    if (endTags is not null && Current.Kind == TokenKind.Name && endTags.Contains(Current.Text))
                    {
                        return body;
                    }

                    body.Add(ParseStatement(tok));
                    break;
                case TokenKind.Eof:
                    if (endTags is not null)
                    {
                        throw SyntaxError($"unexpected end of template, expected {string.Join(" or ", endTags.Select(t => $"'{t}'"))}", tok);
                    }

                    return body;
                default:
                    throw SyntaxError($"unexpected {tok.Describe()}", tok);
            }
        }
    }

    private Stmt ParseStatement(Token blockStart)
    {
        Token tag = Current;
        if (tag.Kind != TokenKind.Name)
        {
            throw SyntaxError($"expected a tag name, got {tag.Describe()}", tag);
        }

        switch (tag.Text)
        {
            case "for":
                return ParseFor();
            case "if":
                return ParseIf();
            case "set":
                return ParseSet();
            case "break":
            case "continue":
                Advance();
                Expect(TokenKind.BlockEnd, "'%}'");
                return tag.Text == "break" ? new BreakStmt(tag.Line, tag.Column) : new ContinueStmt(tag.Line, tag.Column);
            case "generation":
                Advance();
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = Subparse(["endgeneration"]);
                Advance();
                Expect(TokenKind.BlockEnd, "'%}'");
                return new GenerationStmt(body, tag.Line, tag.Column);
        }

        if (UnsupportedTags.Contains(tag.Text))
        {
            throw Unsupported($"{{% {tag.Text} %}}", $"the '{tag.Text}' tag is not supported", blockStart);
        }

        throw SyntaxError($"encountered unknown tag '{tag.Text}'", tag, $"{{% {tag.Text} %}}");
    }

    private ForStmt ParseFor()
    {
        Token start = Advance();
        Target target = ParseAssignTarget(withNamespace: false, extraEnd: "in");
        ExpectName("in");
        Expr iterable = ParseTuple(withCondExpr: false, extraEnd: "recursive");
        Expr? filter = null;
        if (SkipName("if"))
        {
            filter = ParseExpression();
        }

        if (Current.IsName("recursive"))
        {
            throw Unsupported("{% for ... recursive %}", "recursive loops are not supported", Current);
        }

        Expect(TokenKind.BlockEnd, "'%}'");
        var body = Subparse(["endfor", "else"]);
        List<Stmt>? elseBody = null;
        if (Advance().Text == "else")
        {
            Expect(TokenKind.BlockEnd, "'%}'");
            elseBody = Subparse(["endfor"]);
            Advance();
        }

        Expect(TokenKind.BlockEnd, "'%}'");
        return new ForStmt(target, iterable, filter, body, elseBody, start.Line, start.Column);
    }

    private IfStmt ParseIf()
    {
        Token start = Advance();
        var branches = new List<(Expr, List<Stmt>)>();
        List<Stmt>? elseBody = null;
        Expr test = ParseTuple(withCondExpr: false);
        Expect(TokenKind.BlockEnd, "'%}'");
        branches.Add((test, Subparse(["elif", "else", "endif"])));
        while (true)
        {
            Token tag = Advance();
            if (tag.Text == "elif")
            {
                Expr elifTest = ParseTuple(withCondExpr: false);
                Expect(TokenKind.BlockEnd, "'%}'");
                branches.Add((elifTest, Subparse(["elif", "else", "endif"])));
            }
            else if (tag.Text == "else")
            {
                Expect(TokenKind.BlockEnd, "'%}'");
                elseBody = Subparse(["endif"]);
                Advance();
                break;
            }
            else
            {
                break;
            }
        }

        Expect(TokenKind.BlockEnd, "'%}'");
        return new IfStmt(branches, elseBody, start.Line, start.Column);
    }

    private Stmt ParseSet()
    {
        Token start = Advance();
        Target target = ParseAssignTarget(withNamespace: true, extraEnd: null);
        if (SkipOperator("="))
        {
            Expr value = ParseTuple();
            Expect(TokenKind.BlockEnd, "'%}'");
            return new SetStmt(target, value, start.Line, start.Column);
        }

        if (Current.IsOperator("|"))
        {
            throw Unsupported("{% set ... | filter %}", "filtered block assignments are not supported", Current);
        }

        if (target is not NameTarget name)
        {
            throw SyntaxError("block assignment needs a single variable name", start);
        }

        Expect(TokenKind.BlockEnd, "'%}'");
        var body = Subparse(["endset"]);
        Advance();
        Expect(TokenKind.BlockEnd, "'%}'");
        return new SetBlockStmt(name.Name, body, start.Line, start.Column);
    }

    private Target ParseAssignTarget(bool withNamespace, string? extraEnd)
    {
        Token first = Current;
        if (withNamespace && first.Kind == TokenKind.Name && Peek().IsOperator("."))
        {
            Advance();
            Advance();
            Token attr = Expect(TokenKind.Name, "attribute name");
            return new AttributeTarget(first.Text, attr.Text, first.Line, first.Column);
        }

        var names = new List<Target>();
        bool isTuple = false;
        bool parenthesized = SkipOperator("(");
        while (true)
        {
            if (names.Count > 0)
            {
                ExpectOperator(",");
            }

            if (Current.Kind is TokenKind.BlockEnd || Current.IsOperator("=") || Current.IsOperator(")")
                || (extraEnd is not null && Current.IsName(extraEnd)))
            {
                break;
            }

            Token tok = Expect(TokenKind.Name, "variable name");
            if (tok.Text is "true" or "false" or "none" or "True" or "False" or "None")
            {
                throw SyntaxError($"can't assign to '{tok.Text}'", tok);
            }

            names.Add(new NameTarget(tok.Text, tok.Line, tok.Column));
            if (Current.IsOperator(","))
            {
                isTuple = true;
            }
            else
            {
                break;
            }
        }

        if (parenthesized)
        {
            ExpectOperator(")");
            isTuple = true;
        }

        if (names.Count == 0)
        {
            throw SyntaxError("expected an assignment target", first);
        }

        return isTuple ? new TupleTarget(names, first.Line, first.Column) : names[0];
    }

    // ---- expressions -----------------------------------------------------------------------------

    private bool IsTupleEnd(string? extraEnd) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || Current.IsOperator(")")
        || (extraEnd is not null && Current.IsName(extraEnd));

    private Expr ParseTuple(bool withCondExpr = true, string? extraEnd = null, bool explicitParentheses = false)
    {
        Token start = Current;
        var items = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
            }

            if (IsTupleEnd(extraEnd))
            {
                break;
            }

            items.Add(ParseExpression(withCondExpr));
            if (Current.IsOperator(","))
            {
                isTuple = true;
            }
            else
            {
                break;
            }
        }

        if (!isTuple)
        {
            if (items.Count == 1)
            {
                return items[0];
            }

            if (!explicitParentheses)
            {
                throw SyntaxError($"expected an expression, got {Current.Describe()}", Current);
            }
        }

        return new TupleExpr(items, start.Line, start.Column);
    }

    private Expr ParseExpression(bool withCondExpr = true)
    {
        EnterNesting();
        try
        {
            return withCondExpr ? ParseCondExpr() : ParseOr();
        }
        finally
        {
            _depth--;
        }
    }

    private void EnterNesting()
    {
        if (++_depth > MaxNesting)
        {
            throw Unsupported("deep nesting", $"nesting deeper than {MaxNesting} levels is not supported", Current);
        }
    }

    private Expr ParseCondExpr()
    {
        Token start = Current;
        Expr expr = ParseOr();
        while (SkipName("if"))
        {
            Expr test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseCondExpr() : null;
            expr = new CondExpr(test, expr, otherwise, start.Line, start.Column);
        }

        return expr;
    }

    private Expr ParseOr()
    {
        Token start = Current;
        Expr left = ParseAnd();
        while (SkipName("or"))
        {
            left = new OrExpr(left, ParseAnd(), start.Line, start.Column);
        }

        return left;
    }

    private Expr ParseAnd()
    {
        Token start = Current;
        Expr left = ParseNot();
        while (SkipName("and"))
        {
            left = new AndExpr(left, ParseNot(), start.Line, start.Column);
        }

        return left;
    }

    private Expr ParseNot()
    {
        Token start = Current;
        if (SkipName("not"))
        {
            EnterNesting();
            try
            {
                return new NotExpr(ParseNot(), start.Line, start.Column);
            }
            finally
            {
                _depth--;
            }
        }

        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        Token start = Current;
        Expr first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOps.Contains(Current.Text))
            {
                string op = Advance().Text;
                rest.Add((op, ParseMath1()));
            }
            else if (SkipName("in"))
            {
                rest.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Peek().IsName("in"))
            {
                _index += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else
            {
                break;
            }
        }

        return rest.Count == 0 ? first : new CompareExpr(first, rest, start.Line, start.Column);
    }

    private Expr ParseMath1()
    {
        Token start = Current;
        Expr left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            string op = Advance().Text;
            left = new BinaryExpr(op, left, ParseConcat(), start.Line, start.Column);
        }

        return left;
    }

    private Expr ParseConcat()
    {
        Token start = Current;
        var items = new List<Expr> { ParseMath2() };
        while (SkipOperator("~"))
        {
            items.Add(ParseMath2());
        }

        return items.Count == 1 ? items[0] : new ConcatExpr(items, start.Line, start.Column);
    }

    private Expr ParseMath2()
    {
        Token start = Current;
        Expr left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Text is "*" or "/" or "//" or "%")
        {
            string op = Advance().Text;
            left = new BinaryExpr(op, left, ParsePow(), start.Line, start.Column);
        }

        return left;
    }

    private Expr ParsePow()
    {
        Token start = Current;
        Expr left = ParseUnary();
        while (SkipOperator("**"))
        {
            left = new BinaryExpr("**", left, ParseUnary(), start.Line, start.Column);
        }

        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        Token start = Current;
        Expr node;
        if (SkipOperator("-") || SkipOperator("+"))
        {
            bool negate = _tokens[_index - 1].Text == "-";
            EnterNesting();
            try
            {
                node = new UnaryExpr(negate, ParseUnary(false), start.Line, start.Column);
            }
            finally
            {
                _depth--;
            }
        }
        else
        {
            node = ParsePrimary();
        }

        node = ParsePostfix(node);
        if (withFilter)
        {
            node = ParseFilterExpr(node);
        }

        return node;
    }

    private Expr ParsePrimary()
    {
        Token tok = Current;
        switch (tok.Kind)
        {
            case TokenKind.Name:
                Advance();
                return tok.Text switch
                {
                    "true" or "True" => new ConstExpr(true, tok.Line, tok.Column),
                    "false" or "False" => new ConstExpr(false, tok.Line, tok.Column),
                    "none" or "None" => new ConstExpr(null, tok.Line, tok.Column),
                    _ => new NameExpr(tok.Text, tok.Line, tok.Column),
                };
            case TokenKind.String:
                string text = (string)tok.Value!;
                Advance();
                while (Current.Kind == TokenKind.String)
                {
                    text += (string)Advance().Value!;
                }

                return new ConstExpr(text, tok.Line, tok.Column);
            case TokenKind.Integer:
            case TokenKind.Float:
                Advance();
                return new ConstExpr(tok.Value, tok.Line, tok.Column);
            case TokenKind.Operator when tok.Text == "(":
                Advance();
                Expr inner = ParseTuple(explicitParentheses: true);
                ExpectOperator(")");
                return inner;
            case TokenKind.Operator when tok.Text == "[":
                return ParseList();
            case TokenKind.Operator when tok.Text == "{":
                return ParseDict();
            default:
                throw SyntaxError($"unexpected {tok.Describe()}", tok);
        }
    }

    private ListExpr ParseList()
    {
        Token start = ExpectOperator("[");
        var items = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
            }

            if (Current.IsOperator("]"))
            {
                break;
            }

            items.Add(ParseExpression());
        }

        ExpectOperator("]");
        return new ListExpr(items, start.Line, start.Column);
    }

    private DictExpr ParseDict()
    {
        Token start = ExpectOperator("{");
        var items = new List<(Expr, Expr)>();
        while (!Current.IsOperator("}"))
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
            }

            if (Current.IsOperator("}"))
            {
                break;
            }

            Expr key = ParseExpression();
            ExpectOperator(":");
            items.Add((key, ParseExpression()));
        }

        ExpectOperator("}");
        return new DictExpr(items, start.Line, start.Column);
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator(".") || Current.IsOperator("["))
            {
                node = ParseSubscript(node);
            }
            else if (Current.IsOperator("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|"))
            {
                node = ParseFilter(node);
            }
            else if (Current.IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(Expr node)
    {
        Token tok = Advance();
        if (tok.Text == ".")
        {
            Token attr = Advance();
            return attr.Kind switch
            {
                TokenKind.Name => new AttributeExpr(node, attr.Text, tok.Line, tok.Column),
                TokenKind.Integer => new ItemExpr(node, new ConstExpr(attr.Value, attr.Line, attr.Column), tok.Line, tok.Column),
                _ => throw SyntaxError($"expected attribute name, got {attr.Describe()}", attr),
            };
        }

        var args = new List<object>();
        while (!Current.IsOperator("]"))
        {
            if (args.Count > 0)
            {
                ExpectOperator(",");
            }

            args.Add(ParseSubscribed());
        }

        ExpectOperator("]");
        if (args.Count == 1)
        {
            return args[0] switch
            {
                Expr e => new ItemExpr(node, e, tok.Line, tok.Column),
                SliceParts s => new SliceExpr(node, s.Start, s.Stop, s.Step, tok.Line, tok.Column),
                _ => throw new InvalidOperationException(),
            };
        }

        if (args.Count == 0 || args.Any(a => a is SliceParts))
        {
            throw Unsupported("multi-dimensional subscript", "tuple or empty subscripts are not supported", tok);
        }

        return new ItemExpr(node, new TupleExpr(args.Cast<Expr>().ToList(), tok.Line, tok.Column), tok.Line, tok.Column);
    }

    private sealed record SliceParts(Expr? Start, Expr? Stop, Expr? Step);

    private object ParseSubscribed()
    {
        Expr? start = null;
        if (Current.IsOperator(":"))
        {
            Advance();
        }
        else
        {
            Expr node = ParseExpression();
            if (!Current.IsOperator(":"))
            {
                return node;
            }

            Advance();
            start = node;
        }

        Expr? stop = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
        {
            stop = ParseExpression();
        }

        Expr? step = null;
        if (SkipOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
        {
            step = ParseExpression();
        }

        return new SliceParts(start, stop, step);
    }

    private Arguments ParseCallArgs()
    {
        ExpectOperator("(");
        var positional = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + keywords.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }

            if (Current.IsOperator("*") || Current.IsOperator("**"))
            {
                throw Unsupported("*args/**kwargs", "argument unpacking is not supported", Current);
            }

            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                string key = Advance().Text;
                Advance();
                keywords.Add((key, ParseExpression()));
            }
            else
            {
                if (keywords.Count > 0)
                {
                    throw SyntaxError("positional argument follows keyword argument", Current);
                }

                positional.Add(ParseExpression());
            }
        }

        ExpectOperator(")");
        return new Arguments(positional, keywords);
    }

    private CallExpr ParseCall(Expr callee)
    {
        Token start = Current;
        return new CallExpr(callee, ParseCallArgs(), start.Line, start.Column);
    }

    private string ParseDottedName()
    {
        string name = Expect(TokenKind.Name, "a name").Text;
        while (Current.IsOperator(".") && Peek().Kind == TokenKind.Name)
        {
            Advance();
            name += "." + Advance().Text;
        }

        return name;
    }

    private Expr ParseFilter(Expr node)
    {
        Token pipe = ExpectOperator("|");
        Token nameTok = Current;
        string name = ParseDottedName();
        Filters.Validate(name, nameTok);
        Arguments args = Current.IsOperator("(") ? ParseCallArgs() : Arguments.None;
        return new FilterExpr(node, name, args, pipe.Line, pipe.Column);
    }

    private Expr ParseTest(Expr node)
    {
        Token isTok = ExpectName("is");
        bool negated = SkipName("not");
        Token nameTok = Current;
        string name = ParseDottedName();
        TestFunctions.Validate(name, nameTok);
        Arguments args;
        if (Current.IsOperator("("))
        {
            args = ParseCallArgs();
        }
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                     || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and"))
        {
            if (Current.IsName("is"))
            {
                throw SyntaxError("you cannot chain multiple tests with 'is'", Current);
            }

            Expr arg = ParsePostfix(ParsePrimary());
            args = new Arguments([arg], []);
        }
        else
        {
            args = Arguments.None;
        }

        Expr test = new TestExpr(node, name, args, isTok.Line, isTok.Column);
        return negated ? new NotExpr(test, isTok.Line, isTok.Column) : test;
    }
}
