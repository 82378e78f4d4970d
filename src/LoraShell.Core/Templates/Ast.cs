namespace LoraShell.Core.Templates;

// Syntax tree produced by Parser and walked by Evaluator. Every node keeps its template position so
// runtime errors can point at the exact spot.

internal abstract record Node(int Line, int Column);

// ---- statements ------------------------------------------------------------------------------------

internal abstract record Stmt(int Line, int Column) : Node(Line, Column);

internal sealed record TextStmt(string Text, int Line, int Column) : Stmt(Line, Column);

internal sealed record OutputStmt(Expr Value, int Line, int Column) : Stmt(Line, Column);

internal sealed record IfStmt(List<(Expr Test, List<Stmt> Body)> Branches, List<Stmt>? Else, int Line, int Column) : Stmt(Line, Column);

internal sealed record ForStmt(Target Target, Expr Iterable, Expr? Filter, List<Stmt> Body, List<Stmt>? Else, int Line, int Column)
    : Stmt(Line, Column);

internal sealed record SetStmt(Target Target, Expr Value, int Line, int Column) : Stmt(Line, Column);

internal sealed record SetBlockStmt(string Name, List<Stmt> Body, int Line, int Column) : Stmt(Line, Column);

internal sealed record BreakStmt(int Line, int Column) : Stmt(Line, Column);

internal sealed record ContinueStmt(int Line, int Column) : Stmt(Line, Column);

/// <summary>transformers' {% generation %} tag: renders its body (it only marks assistant tokens).</summary>
internal sealed record GenerationStmt(List<Stmt> Body, int Line, int Column) : Stmt(Line, Column);

// ---- assignment targets ----------------------------------------------------------------------------

internal abstract record Target(int Line, int Column) : Node(Line, Column);

internal sealed record NameTarget(string Name, int Line, int Column) : Target(Line, Column);

internal sealed record AttributeTarget(string Object, string Attribute, int Line, int Column) : Target(Line, Column);

internal sealed record TupleTarget(List<Target> Items, int Line, int Column) : Target(Line, Column);

// ---- expressions -----------------------------------------------------------------------------------

internal abstract record Expr(int Line, int Column) : Node(Line, Column);

internal sealed record ConstExpr(object? Value, int Line, int Column) : Expr(Line, Column);

internal sealed record NameExpr(string Name, int Line, int Column) : Expr(Line, Column);

internal sealed record ListExpr(List<Expr> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record TupleExpr(List<Expr> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record AttributeExpr(Expr Object, string Name, int Line, int Column) : Expr(Line, Column);

internal sealed record ItemExpr(Expr Object, Expr Index, int Line, int Column) : Expr(Line, Column);

internal sealed record SliceExpr(Expr Object, Expr? Start, Expr? Stop, Expr? Step, int Line, int Column) : Expr(Line, Column);

internal sealed record Arguments(List<Expr> Positional, List<(string Name, Expr Value)> Keywords)
{
    public static readonly Arguments None = new([], []);
}

internal sealed record CallExpr(Expr Callee, Arguments Args, int Line, int Column) : Expr(Line, Column);

internal sealed record FilterExpr(Expr Operand, string Name, Arguments Args, int Line, int Column) : Expr(Line, Column);

internal sealed record TestExpr(Expr Operand, string Name, Arguments Args, int Line, int Column) : Expr(Line, Column);

internal sealed record NotExpr(Expr Operand, int Line, int Column) : Expr(Line, Column);

internal sealed record UnaryExpr(bool Negate, Expr Operand, int Line, int Column) : Expr(Line, Column);

internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line, int Column) : Expr(Line, Column);

internal sealed record ConcatExpr(List<Expr> Items, int Line, int Column) : Expr(Line, Column);

internal sealed record AndExpr(Expr Left, Expr Right, int Line, int Column) : Expr(Line, Column);

internal sealed record OrExpr(Expr Left, Expr Right, int Line, int Column) : Expr(Line, Column);

internal sealed record CompareExpr(Expr First, List<(string Op, Expr Operand)> Rest, int Line, int Column) : Expr(Line, Column);

internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Line, int Column) : Expr(Line, Column);
