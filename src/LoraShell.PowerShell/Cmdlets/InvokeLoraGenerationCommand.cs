using System.Management.Automation;
using LoraShell.Core.Inference;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsLifecycle.Invoke, "LoraGeneration", DefaultParameterSetName = "Prompt")]
[OutputType(typeof(string), typeof(GenerationReport))]
[CmdletHelp(
    "Generates text from a model: greedy, or temperature and top-p sampling.",
    "Invoke-LoraGeneration encodes the prompt as the tokenizer does (with its BOS, if it adds one), then decodes one token at a time with a key/value cache. With -Messages it renders the conversation with the model's chat template and the generation prompt (as transformers' apply_chat_template(add_generation_prompt=True)), generates the assistant's reply and outputs only the reply; -TemplateArguments passes template variables such as @{ enable_thinking = $false }. -Temperature 0 is greedy (argmax); otherwise logits are divided by the temperature and sampled from the smallest set of tokens whose probability reaches -TopP. -Seed makes sampling reproducible. Generation stops at -MaxTokens, at the model's context length, or at an end-of-sequence or end-of-turn id (generation_config.json's eos_token_id and the tokenizer's eos_token; llama2.c: BOS or EOS). The output is the prompt followed by the generated text; -Detailed returns a LoraShell.GenerationReport with token counts and speed instead.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Invoke-LoraGeneration -Temperature 0 -MaxTokens 200
    """,
    "Greedy decoding from BOS: reproduces llama2.c's reference output for this model byte for byte.")]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin
    1..3 |
        ForEach-Object { $m | Invoke-LoraGeneration -Prompt 'The cat' -MaxTokens 30 `
            -Temperature 0.9 -TopP 0.9 -Seed $_ }
    """,
    "Three reproducible samples, one per seed.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Invoke-LoraGeneration -Prompt 'Lily' -MaxTokens 30 -Temperature 0
    """,
    "Greedy continuation of a prompt, 30 tokens.",
    Output = """
    Lily and Tom were playing in the park. They liked to play with their toys and run arou
    """)]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Invoke-LoraGeneration -Prompt 'Lily' -MaxTokens 50 -Temperature 0 -Detailed |
        Format-List
    """,
    "Shows the generated text together with token counts, stop reason and tokens per second.")]
public sealed class InvokeLoraGenerationCommand : LoraCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model, usually piped from Import-LoraModel.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Position = 0, ParameterSetName = "Prompt", HelpMessage = "Text to continue. Empty (default) starts from BOS alone.")]
    [AllowEmptyString]
    public string Prompt { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "Chat", HelpMessage = "A conversation (hashtables or objects with role and content) to reply to with the model's chat template.")]
    public object[]? Messages { get; set; }

    [Parameter(ParameterSetName = "Chat", HelpMessage = "Extra chat-template variables, e.g. @{ enable_thinking = $false }.")]
    public System.Collections.Hashtable? TemplateArguments { get; set; }

    [Parameter(HelpMessage = "Maximum number of tokens to generate (default 128); -MaxNewTokens is transformers' name for it.")]
    [Alias("MaxNewTokens")]
    [ValidateRange(1, 1_000_000)]
    public int MaxTokens { get; set; } = 128;

    [Parameter(HelpMessage = "Sampling temperature; 0 means greedy decoding (default 0.8).")]
    [ValidateRange(0.0, 100.0)]
    public double Temperature { get; set; } = 0.8;

    [Parameter(HelpMessage = "Nucleus sampling threshold in (0, 1]; 1 disables it (default 0.9).")]
    [ValidateRange(1e-9, 1.0)]
    public double TopP { get; set; } = 0.9;

    [Parameter(HelpMessage = "Sample only from the K most likely tokens (applied before -TopP, as transformers does); 0 (default) keeps all.")]
    [ValidateRange(0, int.MaxValue)]
    public int TopK { get; set; }

    [Parameter(HelpMessage = "Seed for the sampler; the same seed, prompt and settings give the same text.")]
    public long? Seed { get; set; }

    [Parameter(HelpMessage = "Return a LoraShell.GenerationReport (text, token counts, stop reason, speed) instead of the text alone.")]
    public SwitchParameter Detailed { get; set; }

    protected override void Process()
    {
        var options = new GenerationOptions { Prompt = Prompt, MaxTokens = MaxTokens, Temperature = Temperature, TopP = TopP, TopK = TopK, Seed = Seed };
        var result = RunWithProgress($"Generating with {Model.Name}", (report, cancel) =>
        {
            lock (Model.Gate)
            {
                var progress = new InlineProgress<int>(n => report($"{n} of {MaxTokens} tokens", (double)n / MaxTokens));
                if (Messages is null) return Model.Loaded.Generate(options, progress, cancel);
                var extra = TemplateArguments?.Keys.Cast<object>().ToDictionary(k => k.ToString()!, k => ChatMessages.Plain(TemplateArguments[k]), StringComparer.Ordinal);
                return Model.Loaded.GenerateChat(ChatMessages.From(Messages), options, extra, progress, cancel);
            }
        });
        if (!Detailed) { WriteObject(result.Text); return; }
        WriteObject(new GenerationReport
        {
            Text = result.Text, Completion = result.Completion, PromptTokens = result.PromptTokens.Count,
            GeneratedTokens = result.GeneratedTokens.Count, StopReason = result.StopReason, Seconds = result.Seconds,
            TokensPerSecond = result.TokensPerSecond, Seed = Seed, Temperature = Temperature, TopP = TopP,
        });
    }
}
