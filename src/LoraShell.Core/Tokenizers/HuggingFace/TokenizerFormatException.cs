namespace LoraShell.Core.Tokenizers.HuggingFace;

/// <summary>
/// Thrown when a tokenizer.json file is malformed or uses a component (or an option of a component) that this
/// implementation does not support. We refuse rather than tokenize differently from the Rust crate.
/// </summary>
public sealed class TokenizerFormatException : Exception
{
    public TokenizerFormatException(string message, string? component = null, string? path = null, Exception? innerException = null)
        : base(Compose(message, component, path), innerException)
    {
        Component = component;
        Path = path;
    }

    /// <summary>The offending component, e.g. <c>normalizer.type = Lowercase</c>, when one is known.</summary>
    public string? Component { get; }

    /// <summary>A JSON path into the file (e.g. <c>$.pre_tokenizer.pretokenizers[1]</c>), or the file path for I/O problems.</summary>
    public string? Path { get; }

    private static string Compose(string message, string? component, string? path)
    {
        var text = message;
        if (component is not null) text += $" [component: {component}]";
        if (path is not null) text += $" [at: {path}]";
        return text;
    }
}
