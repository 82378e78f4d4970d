namespace LoraShell.Core.Templates;

/// <summary>What went wrong while parsing or rendering a chat template.</summary>
public enum ChatTemplateErrorKind
{
    /// <summary>The template is not valid Jinja.</summary>
    Syntax,

    /// <summary>
    /// The template uses a Jinja construct this interpreter does not implement. Rendering stops rather
    /// than guessing, so a prompt is never silently different from what transformers would produce.
    /// </summary>
    Unsupported,

    /// <summary>Evaluation failed the way Python Jinja2 would fail (undefined value, type error, ...).</summary>
    Runtime,

    /// <summary>The template itself called <c>raise_exception(message)</c>.</summary>
    Raised,

    /// <summary>
    /// Rendering ran past its budget (statements and loop iterations, output size, time): a template
    /// comes with a downloaded model and runs in the user's session, so it is bounded like untrusted code.
    /// </summary>
    Budget,
}

/// <summary>Error raised while parsing or rendering a chat template; carries the template position.</summary>
public sealed class ChatTemplateException : Exception
{
    public ChatTemplateException(
        ChatTemplateErrorKind kind, string detail, int line, int column, string? construct = null, Exception? inner = null)
        : base(Describe(kind, detail, line, column, construct), inner)
    {
        Kind = kind;
        Detail = detail;
        Line = line;
        Column = column;
        Construct = construct;
    }

    public ChatTemplateErrorKind Kind { get; }

    /// <summary>The message without position; for <see cref="ChatTemplateErrorKind.Raised"/> it is exactly the template's message.</summary>
    public string Detail { get; }

    /// <summary>1-based line in the template source (0 when unknown).</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source (0 when unknown).</summary>
    public int Column { get; }

    /// <summary>The Jinja construct involved, e.g. <c>{% include %}</c> or <c>filter 'wordwrap'</c>.</summary>
    public string? Construct { get; }

    private static string Describe(ChatTemplateErrorKind kind, string detail, int line, int column, string? construct)
    {
        string where = line > 0 ? $" at line {line}, column {column}" : "";
        return kind switch
        {
            ChatTemplateErrorKind.Unsupported => $"Unsupported chat template construct {construct ?? "?"}{where}: {detail}",
            ChatTemplateErrorKind.Raised => $"Chat template raised an exception{where}: {detail}",
            ChatTemplateErrorKind.Budget => $"Chat template stopped{where}: it ran past its budget ({detail})",
            ChatTemplateErrorKind.Syntax when construct is not null => $"Chat template syntax error in {construct}{where}: {detail}",
            ChatTemplateErrorKind.Syntax => $"Chat template syntax error{where}: {detail}",
            _ => $"Chat template error{where}: {detail}",
        };
    }
}

/// <summary>
/// Failure raised by value operations that do not know where in the template they run;
/// the evaluator converts it into a <see cref="ChatTemplateException"/> at the innermost node.
/// </summary>
internal sealed class JinjaError : Exception
{
    public JinjaError(ChatTemplateErrorKind kind, string message, string? construct = null) : base(message)
    {
        Kind = kind;
        Construct = construct;
    }

    public ChatTemplateErrorKind Kind { get; }
    public string? Construct { get; }

    public static JinjaError Budget(string message) => new(ChatTemplateErrorKind.Budget, message);
    public static JinjaError Type(string message) => new(ChatTemplateErrorKind.Runtime, "TypeError: " + message);
    public static JinjaError Value(string message) => new(ChatTemplateErrorKind.Runtime, "ValueError: " + message);
    public static JinjaError Undefined(string message) => new(ChatTemplateErrorKind.Runtime, "UndefinedError: " + message);
    public static JinjaError Unsupported(string construct, string message) => new(ChatTemplateErrorKind.Unsupported, message, construct);
}
