namespace LoraShell.Core;

/// <summary>What kind of mistake an error reports; the cmdlet layer maps it to an ErrorCategory.</summary>
public enum LoraErrorKind
{
    /// <summary>A parameter value is out of range or inconsistent.</summary>
    InvalidArgument,
    /// <summary>A file or folder exists but its content is malformed.</summary>
    InvalidData,
    /// <summary>A file, folder, tensor or module that was asked for does not exist.</summary>
    ObjectNotFound,
    /// <summary>An operation is not valid in the object's current state.</summary>
    InvalidOperation,
    /// <summary>A resource (device, disk) is not available.</summary>
    ResourceUnavailable,
}

/// <summary>
/// A user-facing error: the message says what was wrong, what was expected and what exists.
/// <see cref="ErrorId"/> is stable (tests and scripts match on it).
/// </summary>
public class LoraShellException : Exception
{
    public LoraShellException(LoraErrorKind kind, string errorId, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        Kind = kind;
        ErrorId = errorId;
        Target = target;
    }

    public LoraErrorKind Kind { get; }
    public string ErrorId { get; }
    public object? Target { get; }

    public static LoraShellException InvalidData(string errorId, string message, object? target = null)
        => new(LoraErrorKind.InvalidData, errorId, message, target);

    public static LoraShellException InvalidArgument(string errorId, string message, object? target = null)
        => new(LoraErrorKind.InvalidArgument, errorId, message, target);

    public static LoraShellException NotFound(string errorId, string message, object? target = null)
        => new(LoraErrorKind.ObjectNotFound, errorId, message, target);
}
