using System.Management.Automation;
using LoraShell.Core.Tokenizers;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsData.ConvertTo, "LoraToken", DefaultParameterSetName = "Model")]
[OutputType(typeof(TokenInfo), typeof(int[]))]
[CmdletHelp(
    "Splits text into tokens exactly as the model's tokenizer does: ids, token strings and the span of text each covers.",
    "ConvertTo-LoraToken tokenizes -Text with the piped model's tokenizer or the one at -TokenizerPath (a Hugging Face tokenizer.json, a SentencePiece tokenizer.model or a llama2.c tok*.bin, or a folder holding one) and outputs one LoraShell.TokenInfo per token: Index, Id, Token (the vocabulary's spelling), Start and End (the span of the text, .NET string indices) and Text. The ids are what transformers' tokenizer(text) returns, with the special tokens the tokenizer adds (BOS for Llama 2; none for Qwen or GPT-2); -NoSpecialTokens leaves them out (add_special_tokens=False). -AsIds outputs the ids as one int array instead, for ConvertFrom-LoraToken or scripts. Text can come from the pipeline, one tokenization per string.")]
[CmdletExample(
    "ConvertTo-LoraToken -Text 'Hello, world! 12345' -TokenizerPath ../shared/tokenizers/qwen3",
    "Qwen3's tokenizer: one token per digit, Ġ marks a leading space, and each token's character span in the text.",
    Output = """
    Index   Id Token  Start End Text   Special
    -----   -- -----  ----- --- ----   -------
        0 9707 Hello      0   5 Hello  False
        1   11 ,          5   6 ,      False
        2 1879 Ġworld     6  12  world False
        3    0 !         12  13 !      False
        4  220 Ġ         13  14        False
        5   16 1         14  15 1      False
        6   17 2         15  16 2      False
        7   18 3         16  17 3      False
        8   19 4         17  18 4      False
        9   20 5         18  19 5      False
    """)]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        ConvertTo-LoraToken -Text 'Once upon a time' -AsIds
    """,
    "The ids a llama2.c model scores for a text: BOS (1) first.")]
[CmdletExample(
    """
    '<|im_start|>user\nhi<|im_end|>' |
        ConvertTo-LoraToken -TokenizerPath ../shared/tokenizers/qwen3 |
        Where-Object Special
    """,
    "Special tokens in text are matched whole, as Hugging Face does.",
    Output = """
    Index     Id Token        Start End Text         Special
    -----     -- -----        ----- --- ----         -------
        0 151644 <|im_start|>     0  12 <|im_start|> True
        4 151645 <|im_end|>      20  30 <|im_end|>   True
    """)]
public sealed class ConvertToLoraTokenCommand : LoraCmdlet
{
    [Parameter(ParameterSetName = "Model", Mandatory = true, ValueFromPipeline = true, HelpMessage = "A model whose tokenizer to use, usually piped from Import-LoraModel.")]
    public LoraModel? Model { get; set; }

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Model", HelpMessage = "The text to tokenize.")]
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Path", ValueFromPipeline = true)]
    [AllowEmptyString]
    public string Text { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "Path", HelpMessage = "A tokenizer.json, tokenizer.model or llama2.c tok*.bin file, or a folder holding one (with tokenizer_config.json beside a tokenizer.json).")]
    public string? TokenizerPath { get; set; }

    [Parameter(HelpMessage = "Leave out the special tokens the tokenizer adds around a text (add_special_tokens=False).")]
    public SwitchParameter NoSpecialTokens { get; set; }

    [Parameter(HelpMessage = "Output the ids as one int array instead of one object per token.")]
    public SwitchParameter AsIds { get; set; }

    protected override void Process()
    {
        var tokenizer = TokenizerSource.Resolve(Model, TokenizerPath is null ? null : ResolveLiteral(TokenizerPath));
        var tokens = tokenizer.Tokenize(Text, addSpecialTokens: !NoSpecialTokens);
        if (AsIds) { WriteObject(tokens.Select(t => t.Id).ToArray(), enumerateCollection: false); return; }
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            WriteObject(new TokenInfo
            {
                Index = i, Id = t.Id, Token = t.Token, Start = t.Start, End = t.End, Special = t.Special,
                Text = t.End > t.Start ? Text[t.Start..t.End] : "",
            });
        }
    }
}
