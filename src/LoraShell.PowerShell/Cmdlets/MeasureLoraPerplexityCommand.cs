using System.Diagnostics;
using System.Management.Automation;
using LoraShell.Core.Inference;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsDiagnostic.Measure, "LoraPerplexity", DefaultParameterSetName = TextSet)]
[OutputType(typeof(PerplexityReport))]
[CmdletHelp(
    "Measures a model's mean token loss and perplexity on a text or a file.",
    "Measure-LoraPerplexity uses LoraShell's one loss definition: the sequence is BOS followed by the encoded text, and the loss is the mean natural-log cross-entropy of predicting tokens 2..n; perplexity is exp(loss). Text longer than the context is cut into windows that overlap by one token, so each token is predicted once. -Path accepts wildcards and reports one result per file. For an encoder-decoder (T5), -InputText gives the encoder's input and -Text the target: the loss is the target tokens' and EOS's given the input, as T5ForConditionalGeneration's loss for those labels.")]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Measure-LoraPerplexity `
            -Text 'Once upon a time, there was a little girl named Lily.' |
        Format-Table Loss, Perplexity, Tokens
    """,
    "Loss and perplexity of a short in-domain sentence (the default view adds the source and the time taken).",
    Output = """
    Loss Perplexity Tokens
    ---- ---------- ------
    0.10       1.11     15
    """)]
[CmdletExample(
    """
    $m = Import-LoraModel ../shared/models/stories260K/stories260K.bin
    $m | Measure-LoraPerplexity -Path ../shared/models/stories260K/greedy200.txt
    """,
    "Loss of a text file (here the model's own greedy output, which it finds very likely).")]
public sealed class MeasureLoraPerplexityCommand : LoraCmdlet
{
    const string TextSet = "Text";
    const string PathSet = "Path";
    const string LiteralPathSet = "LiteralPath";

    [Parameter(Mandatory = true, ValueFromPipeline = true, HelpMessage = "The model, usually piped from Import-LoraModel.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = TextSet, HelpMessage = "The text to score.")]
    public string Text { get; set; } = "";

    [Parameter(ParameterSetName = TextSet, HelpMessage = "T5 models: the encoder's input; -Text is then the target whose loss is measured (e.g. -InputText 'sst2 sentence: a gripping film' -Text positive).")]
    public string? InputText { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = PathSet, HelpMessage = "UTF-8 text file(s) to score; wildcards allowed, one result per file.")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, HelpMessage = "Like -Path, without wildcard expansion.")]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    [Parameter(HelpMessage = "Window length in tokens for long texts (default and most: the model's context length; a longer one is cut to it with a warning).")]
    [ValidateRange(2, int.MaxValue)]
    public int? WindowLength { get; set; }

    protected override void Process()
    {
        if (InputText is not null) { WriteObject(MeasureTarget()); return; }
        if (ParameterSetName == TextSet) { WriteObject(Measure(Text, "(text)")); return; }
        foreach (var file in Files())
        {
            if (!File.Exists(file))
                throw Core.LoraShellException.NotFound("FileNotFound", $"Text file '{file}' does not exist.", file);
            WriteObject(Measure(Core.IO.TextFile.Read(file, WriteWarning, "Text file", "score"), file));
        }
    }

    IEnumerable<string> Files()
        => ParameterSetName == LiteralPathSet ? LiteralPath.Select(ResolveLiteral) : Path.SelectMany(p => ResolveMany(p, nameof(Path))).ToList();

    PerplexityReport MeasureTarget()
    {
        var clock = Stopwatch.StartNew();
        PerplexityResult result;
        lock (Model.Gate) result = Model.Loaded.ScoreTarget(InputText!, Text);
        return new PerplexityReport
        {
            Model = Model.Name, Source = "(target given input)", Loss = result.Loss, Perplexity = result.Perplexity,
            Tokens = result.Tokens, Windows = result.Windows, Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    PerplexityReport Measure(string text, string source)
    {
        var clock = Stopwatch.StartNew();
        var result = RunWithProgress($"Scoring {System.IO.Path.GetFileName(source)}", (report, cancel) =>
        {
            lock (Model.Gate)
                return Model.Loaded.Perplexity(text, WindowLength, progress: new InlineProgress<double>(f => report($"{f:P0} of windows", f)), cancel: cancel);
        });
        if (WindowLength > result.Window)
            WriteWarning($"-WindowLength {WindowLength} is longer than the model's context (max_position_embeddings {result.Window}); {source} was scored in windows of {result.Window} tokens.");
        return new PerplexityReport
        {
            Model = Model.Name, Source = source, Loss = result.Loss, Perplexity = result.Perplexity,
            Tokens = result.Tokens, Windows = result.Windows, Seconds = clock.Elapsed.TotalSeconds,
        };
    }
}
