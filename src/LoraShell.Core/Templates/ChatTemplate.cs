namespace LoraShell.Core.Templates;

/// <summary>Options for <see cref="ChatTemplate.Render(IReadOnlyDictionary{string, object?}, ChatTemplateRenderOptions?)"/>.</summary>
public sealed class ChatTemplateRenderOptions
{
    /// <summary>Clock behind the <c>strftime_now</c> global; defaults to local time like transformers' datetime.now().</summary>
    public Func<DateTime>? Now { get; init; }
}

/// <summary>
/// A parsed Hugging Face chat template. Renders the way transformers'
/// <c>tokenizer.apply_chat_template(messages, tokenize=False, ...)</c> does: Jinja2 in an immutable sandbox with
/// trim_blocks and lstrip_blocks, the loop-controls extension, and the raise_exception / strftime_now globals
/// and the tojson filter transformers installs. Constructs that are not implemented throw
/// <see cref="ChatTemplateException"/> rather than render something different.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Stmt> _body;

    private ChatTemplate(string source, List<Stmt> body)
    {
        Source = source;
        _body = body;
    }

    public string Source { get; }

    /// <exception cref="ChatTemplateException">The template is invalid or uses an unsupported construct.</exception>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(source, Parser.Parse(source));
    }

    /// <summary>
    /// Renders with the given variables (messages, add_generation_prompt, bos_token, eos_token, tools, ...).
    /// Values may be strings, numbers, booleans, null, lists, dictionaries or System.Text.Json values.
    /// </summary>
    /// <exception cref="ChatTemplateException">Rendering failed, or the template called raise_exception.</exception>
    public string Render(IReadOnlyDictionary<string, object?> context) => Render(context, null);

    public string Render(IReadOnlyDictionary<string, object?> context, ChatTemplateRenderOptions? options)
    {
        ArgumentNullException.ThrowIfNull(context);
        var root = new Scope(null);
        foreach (var (name, value) in context)
        {
            root.Set(name, ValueConverter.FromClr(value));
        }

        var evaluator = new Evaluator(new Globals(options?.Now ?? (() => DateTime.Now)));
        try
        {
            return evaluator.Render(_body, root);
        }
        catch (JinjaError error)
        {
            // Errors raised outside any node (should not happen) still surface as the public exception type.
            throw new ChatTemplateException(error.Kind, error.Message, 0, 0, error.Construct, error);
        }
        catch (Exception error) when (error is not ChatTemplateException)
        {
            // An interpreter bug must still stop the prompt from being produced, with the usual exception type.
            throw new ChatTemplateException(ChatTemplateErrorKind.Runtime, "internal interpreter error: " + error.Message, 0, 0, null, error);
        }
    }

    /// <summary>
    /// Builds the variables transformers passes to a chat template: messages, tools and documents (None when
    /// absent), add_generation_prompt, the special tokens that are set, then any extra keyword arguments
    /// (for example enable_thinking or date_string), which override earlier entries.
    /// </summary>
    public static IReadOnlyDictionary<string, object?> CreateContext(
        IEnumerable<object?> messages,
        bool addGenerationPrompt,
        IReadOnlyDictionary<string, string?>? specialTokens = null,
        IEnumerable<object?>? tools = null,
        IEnumerable<object?>? documents = null,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var context = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.ToList(),
            ["tools"] = tools?.ToList(),
            ["documents"] = documents?.ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        if (specialTokens is not null)
        {
            foreach (var (name, token) in specialTokens)
            {
                // transformers' special_tokens_map omits tokens that are not set, so they stay undefined.
                if (token is not null)
                {
                    context[name] = token;
                }
            }
        }

        if (extra is not null)
        {
            foreach (var (name, value) in extra)
            {
                context[name] = value;
            }
        }

        return context;
    }
}
