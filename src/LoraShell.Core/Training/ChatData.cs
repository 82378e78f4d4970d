using System.Text.Json;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Training;

/// <summary>What chat fine-tuning computes the loss on.</summary>
public enum ChatLoss
{
    /// <summary>Only the tokens of the assistant's replies, each with its end-of-turn token (TRL's assistant_only_loss).</summary>
    AssistantTurns,
    /// <summary>Every token of the rendered conversation but the first.</summary>
    AllTokens,
}

/// <summary>
/// Chat fine-tuning data: JSONL lines <c>{"messages": [{"role": …, "content": …}, …]}</c>, rendered with the
/// model's chat template exactly as transformers' apply_chat_template does and tokenized as it does
/// (no special tokens added beyond what the template writes). By default only the assistant's tokens
/// carry loss; the rest is context.
/// </summary>
public static class ChatData
{
    /// <summary>Whether a JSONL record is a conversation.</summary>
    public static bool IsConversation(JsonElement record) => record.TryGetProperty("messages", out _);

    /// <summary>The messages of a record; errors name the file, line and what is wrong.</summary>
    public static List<ChatMessage> ReadMessages(JsonElement record, string where)
    {
        LoraShellException Bad(string what) => LoraShellException.InvalidData("InvalidChatRecord", $"{where}: {what}.", where);
        if (!record.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw Bad("\"messages\" should be a list of {\"role\": …, \"content\": …} objects");
        if (messages.GetArrayLength() == 0) throw Bad("\"messages\" is empty");
        var list = new List<ChatMessage>();
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            i++;
            if (m.ValueKind != JsonValueKind.Object) throw Bad($"message {i} is not an object");
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw Bad($"message {i} has no \"role\" string");
            string r = role.GetString()!;
            if (!ChatMessage.Roles.Contains(r))
                throw LoraShellException.InvalidData("UnknownChatRole", $"{where}: message {i} has role '{r}'; roles are {string.Join(", ", ChatMessage.Roles)}.", where);
            string content;
            if (!m.TryGetProperty("content", out var c))
            {
                // An assistant turn that only calls tools has no content; anything else without it is a typo.
                if (!m.TryGetProperty("tool_calls", out _))
                    throw Bad($"message {i} has no \"content\" (its fields: {string.Join(", ", m.EnumerateObject().Select(p => p.Name))})");
                content = "";
            }
            else content = c.ValueKind switch
            {
                JsonValueKind.String => c.GetString()!,
                JsonValueKind.Null => "",
                JsonValueKind.Array => ChatMessage.JoinTextParts(c.EnumerateArray().Select(p => p.ValueKind == JsonValueKind.Object
                    ? ((string?)(p.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null),
                       (string?)(p.TryGetProperty("text", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString() : null))
                    : (null, null)), $"{where}: message {i}"),
                _ => throw Bad($"message {i}'s \"content\" should be a string or a list of {{\"type\": \"text\", \"text\": …}} parts"),
            };
            var extra = m.EnumerateObject().Where(p => p.Name is not ("role" or "content"))
                .ToDictionary(p => p.Name, p => (object?)p.Value.Clone(), StringComparer.Ordinal);
            list.Add(new ChatMessage(r, content, extra.Count > 0 ? extra : null));
        }
        if (!list.Any(m => m.Role == "assistant")) throw Bad("the conversation has no assistant message to learn from");
        return list;
    }

    /// <summary>Tokens of one rendered conversation, with the tokens that carry loss marked.</summary>
    public static TokenStream Tokenize(ITextTokenizer tokenizer, IReadOnlyList<ChatMessage> messages, ChatLoss loss, string where)
    {
        var chat = tokenizer.Chat ?? throw LoraShellException.InvalidData("NoChatTemplate",
            $"{where} holds a conversation, but the tokenizer '{tokenizer.Source}' has no chat template (tokenizer_config.json's chat_template or chat_template.jinja).", where);
        var stopStrings = tokenizer.StopIds.Select(id => tokenizer.Decode(new[] { id })).Where(s => s.Length > 0).ToList();
        var (text, spans) = chat.RenderWithAssistantSpans(messages, stopStrings);
        var tokens = tokenizer.Tokenize(text, addSpecialTokens: false);
        var ids = tokens.Select(t => t.Id).ToArray();
        var predict = new bool[ids.Length];
        for (int i = 1; i < ids.Length; i++)
            predict[i] = loss == ChatLoss.AllTokens || spans.Any(s => tokens[i].Start >= s.Start && tokens[i].Start < s.End);
        return new TokenStream(ids, predict);
    }
}
