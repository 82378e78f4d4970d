using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.Templates;

namespace LoraShell.Core.Tokenizers;

/// <summary>
/// A model's chat format, as transformers reads it: the Jinja <c>chat_template</c> of
/// <c>tokenizer_config.json</c> (or the <c>chat_template.jinja</c> file newer exports write beside it)
/// and the special-token strings passed to it (bos_token, eos_token, …). <see cref="Render"/> returns what
/// <c>apply_chat_template(messages, tokenize=False, add_generation_prompt=…)</c> returns.
/// </summary>
public sealed class ChatFormat
{
    public const string ConfigFile = "tokenizer_config.json";
    public const string TemplateFile = "chat_template.jinja";

    ChatFormat(ChatTemplate template, IReadOnlyDictionary<string, string?> specialTokens, string source)
    {
        Template = template;
        SpecialTokens = specialTokens;
        Source = source;
    }

    public ChatTemplate Template { get; }
    /// <summary>bos_token, eos_token, unk_token, pad_token as strings (unset ones are absent).</summary>
    public IReadOnlyDictionary<string, string?> SpecialTokens { get; }
    public string Source { get; }

    /// <summary>The special-token strings of a tokenizer_config.json (a token may be a string or {"content": …}).</summary>
    public static Dictionary<string, string?> ReadSpecialTokens(JsonObject config)
    {
        var tokens = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
        {
            string? value = config[key] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
                _ => null,
            };
            if (value is not null) tokens[key] = value;
        }
        return tokens;
    }

    /// <summary>
    /// The chat format beside a tokenizer: <c>chat_template.jinja</c>, else tokenizer_config.json's
    /// chat_template (a string, or a list of named templates whose "default" is taken). Null when neither has one.
    /// </summary>
    public static ChatFormat? Read(string folder, JsonObject? config)
    {
        string? text = null, source = null;
        string jinja = Path.Combine(folder, TemplateFile);
        if (File.Exists(jinja)) { text = File.ReadAllText(jinja); source = jinja; }
        else if (config?["chat_template"] is JsonNode node)
        {
            source = Path.Combine(folder, ConfigFile);
            text = node switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonArray a => a.OfType<JsonObject>().FirstOrDefault(t => (string?)t["name"] == "default")?["template"]?.GetValue<string>(),
                _ => null,
            } ?? throw LoraShellException.InvalidData("InvalidTokenizerConfig", $"'{source}': chat_template should be a string or a list of {{name, template}} with a 'default' entry.", source);
        }
        return text is null ? null : Parse(text, source!, config);
    }

    /// <summary>The chat format of a tokenizer_config.json object alone (no folder to look in), e.g. one rebuilt from a GGUF file.</summary>
    public static ChatFormat? FromConfig(JsonObject config, string source)
        => config["chat_template"] is JsonValue v && v.TryGetValue<string>(out var text) ? Parse(text, source, config) : null;

    static ChatFormat Parse(string text, string source, JsonObject? config)
    {
        ChatTemplate template;
        try { template = ChatTemplate.Parse(text); }
        catch (ChatTemplateException e)
        {
            throw LoraShellException.InvalidData("UnsupportedChatTemplate", $"The chat template in '{source}' cannot be used: {e.Message}", source);
        }
        return new ChatFormat(template, config is null ? new Dictionary<string, string?>() : ReadSpecialTokens(config), source);
    }

    /// <summary>Renders a conversation exactly as transformers' apply_chat_template(tokenize=False) does.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null,
        IEnumerable<object?>? tools = null)
    {
        var context = ChatTemplate.CreateContext(messages.Select(m => (object?)m.ToTemplateValue()), addGenerationPrompt, SpecialTokens, tools, extra: extra);
        try { return Template.Render(context); }
        catch (ChatTemplateException e) when (e.Kind == ChatTemplateErrorKind.Raised)
        {
            throw LoraShellException.InvalidData("ChatTemplateRefused", $"The chat template refused the conversation: {e.Detail}", Source);
        }
        catch (ChatTemplateException e) when (e.Kind == ChatTemplateErrorKind.Budget)
        {
            throw LoraShellException.InvalidData("ChatTemplateTooExpensive",
                $"The chat template in '{Source}' was stopped: {e.Message}. A template comes with the model and runs in your session, so its rendering is bounded; this one loops or grows far beyond what a chat prompt needs.", Source);
        }
        catch (ChatTemplateException e)
        {
            throw LoraShellException.InvalidData("ChatTemplateFailed", $"The chat template in '{Source}' could not render the conversation: {e.Message}", Source);
        }
    }

    /// <summary>
    /// The character spans of the assistant turns in the rendering of <paramref name="messages"/>, each up
    /// to and including its end-of-turn string (one of <paramref name="endOfTurn"/>). A turn starts where the
    /// generation prompt of the conversation before it ends (rendering messages[..i] with the generation
    /// prompt, then messages[..i+1]), which also covers what a template writes on the assistant's side
    /// (Qwen3's empty think block). Templates that render history differently from the latest turn (Qwen3
    /// drops earlier reasoning) are not prefix-stable; for those turns the reply's content is located in
    /// the whole rendering instead. A turn found neither way is an error, never a guess.
    /// </summary>
    public (string Text, List<(int Start, int End)> Spans) RenderWithAssistantSpans(IReadOnlyList<ChatMessage> messages, IReadOnlyCollection<string> endOfTurn)
    {
        string full = Render(messages, addGenerationPrompt: false);
        var spans = new List<(int, int)>();
        int searchFrom = 0;
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant") continue;
            var before = messages.Take(i).ToList();
            string prompt = before.Count == 0 ? "" : Render(before, addGenerationPrompt: true);
            string upTo = Render(messages.Take(i + 1).ToList(), addGenerationPrompt: false);
            int start;
            if (prompt.Length >= searchFrom && upTo.StartsWith(prompt, StringComparison.Ordinal) && full.StartsWith(upTo, StringComparison.Ordinal))
                start = prompt.Length;
            else
            {
                string content = messages[i].Content;
                start = content.Length == 0 ? -1 : full.IndexOf(content, searchFrom, StringComparison.Ordinal);
                if (start < 0)
                    throw LoraShellException.InvalidData("AssistantTurnNotFound",
                        $"Assistant turn {i + 1} cannot be located in the rendering of the chat template in '{Source}' (its content does not appear verbatim and the template's rendering is not prefix-stable); train without assistant-only loss.", Source);
            }
            int end = EndOfTurn(full, start, endOfTurn);
            spans.Add((start, end));
            searchFrom = end;
        }
        return (full, spans);
    }

    /// <summary>The end of the first end-of-turn string after <paramref name="start"/>, or the end of the text.</summary>
    static int EndOfTurn(string text, int start, IReadOnlyCollection<string> endOfTurn)
    {
        int best = text.Length;
        foreach (var marker in endOfTurn.Where(m => m.Length > 0))
        {
            int at = text.IndexOf(marker, start, StringComparison.Ordinal);
            if (at >= 0) best = Math.Min(best, at + marker.Length);
        }
        return best;
    }
}
