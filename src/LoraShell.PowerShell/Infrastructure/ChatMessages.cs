using System.Collections;
using System.Management.Automation;
using LoraShell.Core;
using LoraShell.Core.Tokenizers;

namespace LoraShell.PowerShell;

/// <summary>
/// Turns what a user passes as -Messages (hashtables, PSCustomObjects, JSON read with ConvertFrom-Json)
/// into chat messages: role and content, and every other key (tool_calls, reasoning_content, …) as plain
/// lists and dictionaries the template can read.
/// </summary>
static class ChatMessages
{
    public static List<ChatMessage> From(IEnumerable<object?> items)
    {
        var messages = new List<ChatMessage>();
        int i = 0;
        foreach (var item in items)
        {
            i++;
            if (Plain(item) is not Dictionary<string, object?> fields)
                throw LoraShellException.InvalidArgument("InvalidChatMessage", $"Message {i} is not a role/content object: give hashtables such as @{{ role = 'user'; content = 'Hi' }}.", item);
            object? Value(string name) => fields.FirstOrDefault(f => string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
            bool Has(string name) => fields.Keys.Any(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase));
            string? Field(string name) => Value(name)?.ToString();
            string role = Field("role") ?? throw LoraShellException.InvalidArgument("InvalidChatMessage", $"Message {i} has no role.", item);
            if (!ChatMessage.Roles.Contains(role))
                throw LoraShellException.InvalidArgument("UnknownMessageRole", $"Message {i} has role '{role}'; roles are {string.Join(", ", ChatMessage.Roles)}.", role);
            var extra = fields.Where(f => !f.Key.Equals("role", StringComparison.OrdinalIgnoreCase) && !f.Key.Equals("content", StringComparison.OrdinalIgnoreCase))
                .ToDictionary(f => f.Key, f => f.Value, StringComparer.Ordinal);
            if (!Has("content") && !Has("tool_calls"))
                throw LoraShellException.InvalidArgument("InvalidChatMessage", $"Message {i} has no content (its keys: {string.Join(", ", fields.Keys)}).", item);
            string content = Value("content") switch
            {
                null => "",
                string s => s,
                List<object?> parts => ChatMessage.JoinTextParts(parts.Select(p => p is Dictionary<string, object?> d
                    ? (d.GetValueOrDefault("type") as string, d.GetValueOrDefault("text") as string) : ((string?)null, (string?)null)), $"Message {i}"),
                Dictionary<string, object?> => throw LoraShellException.InvalidArgument("InvalidChatMessage",
                    $"Message {i}'s content is an object; give a string or a list of @{{ type = 'text'; text = '…' }} parts.", item),
                var other => Convert.ToString(other, System.Globalization.CultureInfo.InvariantCulture) ?? "",
            };
            messages.Add(new ChatMessage(role, content, extra.Count > 0 ? extra : null));
        }
        if (messages.Count == 0) throw LoraShellException.InvalidArgument("NoChatMessages", "-Messages is empty.");
        return messages;
    }

    /// <summary>PowerShell values as plain CLR values: dictionaries, lists, strings, numbers, booleans, null.</summary>
    public static object? Plain(object? value) => value switch
    {
        null => null,
        PSObject { BaseObject: PSCustomObject } ps => ps.Properties.ToDictionary(p => p.Name, p => Plain(p.Value), StringComparer.Ordinal),
        PSObject ps => Plain(ps.BaseObject),
        string or bool or int or long or double or float or decimal => value,
        IDictionary d => d.Keys.Cast<object>().ToDictionary(k => k.ToString()!, k => Plain(d[k]), StringComparer.Ordinal),
        IEnumerable e => e.Cast<object?>().Select(Plain).ToList(),
        _ => value.ToString(),
    };
}
