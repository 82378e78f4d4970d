namespace LoraShell.Core.Tokenizers;

/// <summary>
/// One turn of a conversation: a role (system, user, assistant, tool) and its content, plus any other
/// keys a template reads (tool_calls, reasoning_content, name, …), passed to the template as they are.
/// </summary>
public sealed record ChatMessage(string Role, string Content, IReadOnlyDictionary<string, object?>? Extra = null)
{
    public static readonly IReadOnlyList<string> Roles = new[] { "system", "user", "assistant", "tool" };

    /// <summary>The message as the template sees it: a dictionary with role, content and the extra keys.</summary>
    public IReadOnlyDictionary<string, object?> ToTemplateValue()
    {
        var value = new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = Role, ["content"] = Content };
        if (Extra is not null) foreach (var (k, v) in Extra) value[k] = v;
        return value;
    }
}
