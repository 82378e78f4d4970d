using LoraShell.Core.Models;
using LoraShell.Core.Training;
using Xunit;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

[Collection(nameof(ReproducibleTrainingCollection))]
public class ClassificationTests
{
    /// <summary>A task a 260K model can learn in a few dozen steps: the label is which of two words the sentence holds.</summary>
    static string WriteWordTask(TempFolder dir, int count)
    {
        var random = new Random(3);
        string[] names = { "Lily", "Tom", "the cat", "a bird", "Sue", "the dog", "Ben", "mom" };
        string[] places = { "at the park", "in the house", "by the tree", "at school", "in the garden" };
        var lines = new List<string> { "sentence\tlabel" };
        for (int i = 0; i < count; i++)
        {
            bool happy = random.Next(2) == 1;
            lines.Add($"{names[random.Next(names.Length)]} was very {(happy ? "happy" : "sad")} {places[random.Next(places.Length)]} .\t{(happy ? "pos" : "neg")}");
        }
        string path = dir.File("words.tsv");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void Reads_tsv_with_header_and_sorts_labels()
    {
        using var dir = new TempFolder();
        File.WriteAllLines(dir.File("a.tsv"), new[] { "sentence\tlabel", "good film\t1", "bad film\t0", "fine\t10", "ok film\t1" });
        var data = ClassificationData.Load(new[] { dir.File("a.tsv") }, null, 0.25, SharedData.Stories.Tokenizer!, 8);
        Assert.Equal(new[] { "0", "1", "10" }, data.Labels);          // numeric order, not ordinal
        Assert.Equal(3, data.Train.Count);
        Assert.Single(data.Validation);
        Assert.Equal(1, data.Validation[0].Label);                    // the last line ("ok film", label "1") is held out
        Assert.All(data.Train, e => Assert.Equal(SharedData.Stories.Tokenizer!.BosId, e.Tokens[0]));
    }

    [Fact]
    public void Names_the_line_that_is_not_sentence_tab_label()
    {
        using var dir = new TempFolder();
        File.WriteAllLines(dir.File("bad.tsv"), new[] { "good film\t1", "no tab here", "bad\t0" });
        var e = Assert.Throws<LoraShellException>(() => ClassificationData.Load(new[] { dir.File("bad.tsv") }, null, 0, SharedData.Stories.Tokenizer!, 8));
        Assert.Equal("InvalidClassificationLine", e.ErrorId);
        Assert.Contains("bad.tsv:2", e.Message);
        File.WriteAllLines(dir.File("one.tsv"), new[] { "good film\t1", "nice\t1" });
        Assert.Equal("TooFewLabels", Assert.Throws<LoraShellException>(() => ClassificationData.Load(new[] { dir.File("one.tsv") }, null, 0, SharedData.Stories.Tokenizer!, 8)).ErrorId);
    }

    [Fact]
    public void Padding_does_not_change_a_sentence_s_logits()
    {
        var model = SharedData.Stories.Model;
        manual_seed(5);
        using var head = new ClassificationHead(model.Config.HiddenSize, 3);
        var a = new LabeledSequence(new[] { 1, 40, 41, 42, 43, 44 }, 0);
        var b = new LabeledSequence(new[] { 1, 50, 51 }, 1);
        using var _ = no_grad();
        Tensor Logits(IReadOnlyList<LabeledSequence> batch)
        {
            var (ids, lengths, _) = ClassificationObjective.Collate(batch, CPU);
            return head.call(model.Decoder.Forward(ids), lengths);
        }
        var together = Logits(new[] { a, b });
        Assert.True(TensorAssert.MaxAbsDiff(Logits(new[] { b })[0], together[1]) < 1e-5);
        Assert.True(TensorAssert.MaxAbsDiff(Logits(new[] { a })[0], together[0]) < 1e-5);
    }

    [Theory]
    [InlineData(TrainingMethod.Lora)]
    [InlineData(TrainingMethod.Full)]
    [InlineData(TrainingMethod.Ladder)]
    public void Every_method_learns_a_word_cue_and_reports_accuracy(TrainingMethod method)
    {
        using var dir = new TempFolder();
        string data = WriteWordTask(dir, 400);
        var loaded = SharedData.LoadStories();
        var r = Trainer.Run(loaded, new TrainingOptions
        {
            Method = method, DataPaths = new[] { data }, ValidationFraction = 0.2, MaxSteps = 60, BatchSize = 16, SequenceLength = 32,
            LearningRate = method == TrainingMethod.Full ? 2e-3 : 1e-2, Seed = 7, OutputPath = dir.File("run"),
            Ladder = new SideTuning.LadderConfig { ReductionFactor = 4 },
        });
        Assert.Equal("Classification", r.Task);
        Assert.Equal(new[] { "neg", "pos" }, r.Labels);
        Assert.True(r.FinalValidationAccuracy >= 0.95, $"{method}: accuracy {r.InitialValidationAccuracy:F3} -> {r.FinalValidationAccuracy:F3}");
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss);
        Assert.True(File.Exists(Path.Combine(r.ClassifierPath!, "score.safetensors")));
        Assert.Contains("pos", File.ReadAllText(Path.Combine(r.ClassifierPath!, "labels.json")));
        Assert.Equal(61, File.ReadAllLines(Path.Combine(dir.File("run"), Trainer.MetricsFile)).Length);
        if (method == TrainingMethod.Ladder) Assert.All(loaded.Model.parameters(), p => Assert.Null(p.grad));
    }

    [Fact]
    public void Resumed_classification_repeats_the_uninterrupted_run_across_an_epoch_boundary()
    {
        using var dir = new TempFolder();
        string data = WriteWordTask(dir, 400); // 320 training sentences: 20 steps of 16 per epoch
        var options = new TrainingOptions
        {
            Method = TrainingMethod.Ladder, DataPaths = new[] { data }, ValidationFraction = 0.2, MaxSteps = 30, BatchSize = 16, SequenceLength = 32,
            LearningRate = 1e-2, Seed = 7, CheckpointEvery = 10, EvalEvery = 0, Ladder = new SideTuning.LadderConfig { ReductionFactor = 4 },
        };
        using var a = SharedData.LoadStories();
        var whole = Trainer.Run(a, options with { OutputPath = dir.File("a") });

        using var b = SharedData.LoadStories();
        using var cts = new CancellationTokenSource();
        var partial = Trainer.Run(b, options with { OutputPath = dir.File("b") }, new InlineProgress(p => { if (p.Step == 25) cts.Cancel(); }), cts.Token);
        Assert.True(partial.Cancelled);
        Assert.True(File.Exists(Path.Combine(partial.CheckpointPath!, ClassificationObjective.ClassifierFolder, "score.safetensors")));

        using var c = SharedData.LoadStories();
        var resumed = Trainer.Run(c, options with { OutputPath = dir.File("b"), Resume = true });
        Assert.Equal(25, resumed.ResumedFromStep);
        Assert.Equal(30, resumed.Losses.Count);
        for (int i = 0; i < 30; i++) Assert.True(Math.Abs(whole.Losses[i] - resumed.Losses[i]) < 1e-4, $"step {i + 1}: {whole.Losses[i]} vs {resumed.Losses[i]}");
        Assert.Equal(whole.FinalValidationAccuracy, resumed.FinalValidationAccuracy);
        Assert.Equal(whole.InitialValidationAccuracy, resumed.InitialValidationAccuracy);
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole.ClassifierPath!, "labels.json")), File.ReadAllBytes(Path.Combine(resumed.ClassifierPath!, "labels.json")));

        // The checkpoint belongs to this label set: other labels cannot resume from it.
        string other = dir.File("other.tsv");
        File.WriteAllLines(other, File.ReadAllLines(data).Select(l => l.Replace("\tpos", "\tgood").Replace("\tneg", "\tbad")));
        using var d = SharedData.LoadStories();
        var e = Assert.Throws<LoraShellException>(() => Trainer.Run(d, options with { DataPaths = new[] { other }, OutputPath = dir.File("b"), Resume = true }));
        Assert.Equal("CheckpointMismatch", e.ErrorId);
    }

    sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
