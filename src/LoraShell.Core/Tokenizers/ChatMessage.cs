namespace LoraShell.Core.Tokenizers;

/// <summary>
/// One turn of a conversation: a role (system, user, assistant, tool) and its content, plus any other
/// keys a template reads (tool_calls, reasoning_content, name, …), passed to the template as they are.
/// </summary>
public sealed record ChatMessage(string Role, string Content, IReadOnlyDictionary<string, object?>? Extra = null)
{
    /// <summary>
    /// Content given as a list of parts (the multimodal form many datasets use, [{"type": "text", "text": …}]):
    /// the text parts joined, as a text-only template sees them; any other part (image, audio) is refused by name.
    /// </summary>
    public static string JoinTextParts(IEnumerable<(string? Type, string? Text)> parts, string where)
    {
        var text = new System.Text.StringBuilder();
        int n = 0;
        foreach (var (type, value) in parts)
        {
            n++;
            if (type != "text" || value is null)
                throw LoraShellException.InvalidData("UnsupportedContentPart",
                    type is null or "text"
                        ? $"{where}: content part {n} is not a {{\"type\": \"text\", \"text\": …}} object."
                        : $"{where}: content part {n} is of type '{type}'; LoraShell's models read text, so only \"text\" parts can be used.", where);
            text.Append(value);
        }
        return text.ToString();
    }

    public static readonly IReadOnlyList<string> Roles = new[] { "system", "user", "assistant", "tool" };

    /// <summary>The message as the template sees it: a dictionary with role, content and the extra keys.</summary>
    public IReadOnlyDictionary<string, object?> ToTemplateValue()
    {
        var value = new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = Role, ["content"] = Content };
        if (Extra is not null) foreach (var (k, v) in Extra) value[k] = v;
        return value;
    }
}
