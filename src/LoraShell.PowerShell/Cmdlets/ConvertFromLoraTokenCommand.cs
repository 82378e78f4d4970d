using System.Management.Automation;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.ConvertFrom, "LoraToken", DefaultParameterSetName = "Model")]
[OutputType(typeof(string))]
[CmdletHelp(
    "Turns token ids back into text with the model's tokenizer.",
    "ConvertFrom-LoraToken decodes -Id (an int array; ids piped one by one are gathered into one sequence) with the piped model's tokenizer or the one at -TokenizerPath, as transformers' tokenizer.decode does: byte-level tokens become their bytes, SentencePiece's ▁ becomes a space. -SkipSpecialTokens drops BOS, EOS and chat markers. An id outside the vocabulary is an error that names it.")]
[CmdletExample(
    "ConvertFrom-LoraToken -Id 9707, 11, 1879, 0 -TokenizerPath ../shared/tokenizers/qwen3",
    "Decodes Qwen3 token ids back to text.",
    Output = """
    Hello, world!
    """)]
[CmdletExample(
    """
    $ids = ConvertTo-LoraToken -Text 'naïve café' -TokenizerPath ../shared/tokenizers/gpt2 `
        -AsIds
    ConvertFrom-LoraToken -Id $ids -TokenizerPath ../shared/tokenizers/gpt2
    """,
    "A round trip: the text comes back unchanged.")]
public sealed class ConvertFromLoraTokenCommand : LoraCmdlet
{
    readonly List<int> _ids = new();

    // Not mandatory: without a model or -TokenizerPath the error says a tokenizer is needed, instead of a prompt for -Model.
    [Parameter(ParameterSetName = "Model", HelpMessage = "A model whose tokenizer to use.")]
    public LoraModel? Model { get; set; }

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, HelpMessage = "Token ids to decode (an array, ids piped one by one, or the Id of tokens piped from ConvertTo-LoraToken).")]
    [AllowEmptyCollection]
    public int[] Id { get; set; } = Array.Empty<int>();

    [Parameter(Mandatory = true, ParameterSetName = "Path", HelpMessage = "A tokenizer.json, tokenizer.model or llama2.c tok*.bin file, or a folder holding one.")]
    public string? TokenizerPath { get; set; }

    [Parameter(HelpMessage = "Leave out special tokens (BOS, EOS, chat markers).")]
    public SwitchParameter SkipSpecialTokens { get; set; }

    protected override void Process() => _ids.AddRange(Id);

    protected override void EndProcessing()
    {
        try
        {
            var tokenizer = TokenizerSource.Resolve(Model, TokenizerPath is null ? null : ResolveLiteral(TokenizerPath));
            WriteObject(tokenizer.Decode(_ids, SkipSpecialTokens));
        }
        catch (Core.LoraShellException e) { ThrowTerminatingError(ToErrorRecord(e)); }
    }
}
