using System.Collections;
using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.ConvertTo, "LoraChatPrompt", DefaultParameterSetName = "Model")]
[OutputType(typeof(string))]
[CmdletHelp(
    "Renders a conversation with the model's chat template, exactly as transformers' apply_chat_template(tokenize=False) does.",
    "ConvertTo-LoraChatPrompt renders -Messages (hashtables or objects with role and content, plus any keys the template reads such as tool_calls or reasoning_content) with the Jinja chat_template of the piped model's tokenizer, or of the tokenizer_config.json (or chat_template.jinja) at -TokenizerPath, passing bos_token and eos_token from that config as transformers does. -AddGenerationPrompt appends the start of the assistant's turn, for generation. -Tools passes tool definitions and -TemplateArguments extra variables (for example @{ enable_thinking = $false } for Qwen3). LoraShell's Jinja interpreter covers the constructs real templates use (Qwen3, Llama 3, Mistral, Zephyr/TinyLlama, ChatML/SmolLM2, Phi-3); a construct it does not implement is an error that names it, never a different prompt. A template's own raise_exception (Mistral's role alternation) becomes a ChatTemplateRefused error.")]
[CmdletExample(
    """
    ConvertTo-LoraChatPrompt -TokenizerPath ../shared/tokenizers/qwen3 -AddGenerationPrompt `
        -Messages @(
        @{ role = 'system'; content = 'Be brief.' }
        @{ role = 'user'; content = 'What is LoRA?' }
    )
    """,
    "Renders a conversation with Qwen3's chat template, ending with the assistant's turn opened for generation.",
    Output = """
    <|im_start|>system
    Be brief.<|im_end|>
    <|im_start|>user
    What is LoRA?<|im_end|>
    <|im_start|>assistant
    """)]
[CmdletExample(
    """
    $chat = @(@{ role = 'user'; content = 'Hi' }, @{ role = 'assistant'; content = 'Hello!' })
    ConvertTo-LoraChatPrompt -TokenizerPath ../shared/tokenizers/qwen3 -Messages $chat |
        ConvertTo-LoraToken -TokenizerPath ../shared/tokenizers/qwen3 -NoSpecialTokens
    """,
    "The tokens a chat fine-tune trains on: the rendered conversation tokenized without extra special tokens, as apply_chat_template(tokenize=True) does.")]
public sealed class ConvertToLoraChatPromptCommand : LoraCmdlet
{
    [Parameter(ParameterSetName = "Model", Mandatory = true, ValueFromPipeline = true, HelpMessage = "A model whose tokenizer's chat template to use.")]
    public LoraModel? Model { get; set; }

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, HelpMessage = "The conversation: objects or hashtables with role (system, user, assistant, tool) and content; piped messages (e.g. from ConvertFrom-Json) make one conversation.")]
    public object[] Messages { get; set; } = Array.Empty<object>();

    readonly List<object> _messages = new();

    [Parameter(Mandatory = true, ParameterSetName = "Path", HelpMessage = "A folder (or its tokenizer.json) with tokenizer_config.json holding the chat_template.")]
    public string? TokenizerPath { get; set; }

    [Parameter(HelpMessage = "Append the start of the assistant's turn (add_generation_prompt=True).")]
    public SwitchParameter AddGenerationPrompt { get; set; }

    [Parameter(HelpMessage = "Tool definitions passed to the template as 'tools'.")]
    public object[]? Tools { get; set; }

    [Parameter(HelpMessage = "Extra template variables, e.g. @{ enable_thinking = $false }.")]
    public Hashtable? TemplateArguments { get; set; }

    protected override void Process()
    {
        // A piped model binds -Model and leaves -Messages as given; piped messages arrive one per record.
        if (!ReferenceEquals(Messages, _lastMessages)) _messages.AddRange(Messages);
        _lastMessages = Messages;
    }

    object[]? _lastMessages;

    protected override void EndProcessing()
    {
        try
        {
            var tokenizer = TokenizerSource.Resolve(Model, TokenizerPath is null ? null : ResolveLiteral(TokenizerPath));
            var chat = tokenizer.Chat ?? throw Core.LoraShellException.InvalidData("NoChatTemplate",
                $"The tokenizer '{tokenizer.Source}' has no chat template (tokenizer_config.json's chat_template or chat_template.jinja).", tokenizer.Source);
            var extra = TemplateArguments?.Keys.Cast<object>().ToDictionary(k => k.ToString()!, k => ChatMessages.Plain(TemplateArguments[k]), StringComparer.Ordinal);
            WriteObject(chat.Render(ChatMessages.From(_messages), AddGenerationPrompt, extra, Tools?.Select(ChatMessages.Plain)));
        }
        catch (Core.LoraShellException e) { ThrowTerminatingError(ToErrorRecord(e)); }
    }
}
