using System.Text;
using System.Text.Json;
using LoraShell.Core.Inference;
using LoraShell.Core.IO;
using LoraShell.Core.Training;

namespace LoraShell.Core.Tests;

/// <summary>
/// What a run cuts, clamps or cannot score is said on the warning channel (a cmdlet's warning stream,
/// visible without -Verbose) — issue 32, classes 6 and 8 — and data with nothing to learn is refused.
/// </summary>
public class LengthWarningTests
{
    sealed class Log
    {
        public readonly List<string> Info = new(), Warnings = new();
        public RunLog Run => new(Info.Add, Warnings.Add);
    }

    static readonly string Story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog and her friends.";

    static string Record(string prompt, string completion) => JsonSerializer.Serialize(new { prompt, completion });

    [Fact]
    public void PromptsLongerThanAWindowWarnAndAValidationOfPromptsOnlyIsNotReportedAsNaN()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        string longPrompt = string.Join(" ", Enumerable.Repeat(Story, 3));
        File.WriteAllLines(dir.File("train.jsonl"), Enumerable.Range(0, 12).Select(i => Record(i % 2 == 0 ? longPrompt : "Lily said", " The end.")));
        File.WriteAllLines(dir.File("val.jsonl"), new[] { Record(longPrompt, " The end.") });
        var log = new Log();
        var result = Trainer.Run(m, new TrainingOptions
        {
            DataPaths = new[] { dir.File("train.jsonl") }, ValidationPaths = new[] { dir.File("val.jsonl") },
            MaxSteps = 2, BatchSize = 2, SequenceLength = 16, MaxEvalWindows = 2,
        }, log: log.Run);
        Assert.Contains(log.Warnings, w => w.Contains("7 of 13 prompt/completion records have a prompt of at least one window (-SequenceLength 16"));
        Assert.Contains(log.Warnings, w => w.Contains("No validation window of the 2 scored holds a token to predict"));
        Assert.Empty(result.Evaluations);
        Assert.Null(result.FinalValidationLoss);
        Assert.All(result.Losses, l => Assert.True(double.IsFinite(l)));
    }

    [Fact]
    public void TrainingWindowsWithNothingToPredictAreRefused()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        // Each record: a prompt of many windows, then a short completion that falls in the stream's cut-off tail.
        File.WriteAllLines(dir.File("train.jsonl"), new[] { Record(string.Join(" ", Enumerable.Repeat(Story, 4)), "!") });
        var e = Assert.Throws<LoraShellException>(() => Trainer.Run(m, new TrainingOptions
        {
            DataPaths = new[] { dir.File("train.jsonl") }, ValidationFraction = 0, MaxSteps = 1, BatchSize = 1, SequenceLength = 64,
        }));
        Assert.Equal("NoTrainingTargets", e.ErrorId);
        Assert.Contains("-SequenceLength 64", e.Message);
    }

    [Fact]
    public void AValidationSplitShorterThanAWindowAndAContextOverrunAreWarnings()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        File.WriteAllText(dir.File("train.txt"), string.Join(" ", Enumerable.Repeat(Story, 60)));
        File.WriteAllText(dir.File("val.txt"), "Lily ran.");
        var log = new Log();
        Trainer.Run(m, new TrainingOptions
        {
            DataPaths = new[] { dir.File("train.txt") }, ValidationPaths = new[] { dir.File("val.txt") },
            MaxSteps = 1, BatchSize = 1, SequenceLength = 600,
        }, log: log.Run);
        Assert.Contains(log.Warnings, w => w.Contains("fewer than one window of -SequenceLength 600 + 1; no validation loss"));
        Assert.Contains(log.Warnings, w => w.Contains("longer than the model's context (max_position_embeddings 512)"));
        Assert.DoesNotContain(log.Info, l => l.Contains("no validation loss"));
    }

    [Fact]
    public void DataOfOnlyWhitespaceIsRefused()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        File.WriteAllText(dir.File("blank.txt"), " \n\n\t  \n");
        File.WriteAllLines(dir.File("blank.jsonl"), new[] { """{"text": "   "}""", """{"text": "\n\n"}""", """{"prompt": " ", "completion": "  "}""" });
        foreach (var file in new[] { "blank.txt", "blank.jsonl" })
        {
            var e = Assert.Throws<LoraShellException>(() => Trainer.Run(m, new TrainingOptions { DataPaths = new[] { dir.File(file) }, ValidationFraction = 0, MaxSteps = 1, BatchSize = 1, SequenceLength = 2 }));
            Assert.Equal("EmptyTrainingData", e.ErrorId);
            Assert.Contains("only whitespace", e.Message);
        }
    }

    [Fact]
    public void WarningsAboutTheDataComeAgainWhenTheTokensComeFromTheCache()
    {
        using var dir = new TempFolder();
        var tokenizer = SharedData.Stories.Tokenizer!;
        File.WriteAllBytes(dir.File("latin1.txt"), Encoding.Latin1.GetBytes(string.Concat(Enumerable.Repeat("Déjà vu, café crème. ", 50))));
        var first = new Log();
        var fresh = TokenCorpus.Load(new[] { dir.File("latin1.txt") }, null, 0.1, tokenizer, dir.File("cache"), 32, log: first.Run);
        var second = new Log();
        var cached = TokenCorpus.Load(new[] { dir.File("latin1.txt") }, null, 0.1, tokenizer, dir.File("cache"), 32, log: second.Run);
        Assert.False(fresh.FromCache);
        Assert.True(cached.FromCache);
        Assert.Single(first.Warnings, w => w.Contains("is not valid UTF-8 (first bad byte at offset 1)"));
        Assert.Equal(first.Warnings, second.Warnings);
        Assert.Equal(fresh.Warnings, cached.Warnings);
    }

    [Fact]
    public void AScoringWindowLongerThanTheContextIsCutToItAndABinaryFileIsNotScored()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        string text = string.Join(" ", Enumerable.Repeat(Story, 30));
        var asked = m.Perplexity(text, windowLength: 100_000);
        var context = m.Perplexity(text, windowLength: 512);
        Assert.Equal(512, asked.Window);
        Assert.Equal(context.Loss, asked.Loss);
        Assert.True(asked.Windows > 1);

        var bytes = new byte[4096];
        new Random(3).NextBytes(bytes);
        bytes[7] = 0;
        File.WriteAllBytes(dir.File("model.bin"), bytes);
        var e = Assert.Throws<LoraShellException>(() => TextFile.Read(dir.File("model.bin"), null, "Text file", "score"));
        Assert.Equal("DataNotText", e.ErrorId);
        Assert.Contains("not text to score", e.Message);
    }
}
