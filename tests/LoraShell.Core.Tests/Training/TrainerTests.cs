using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

[Collection(nameof(ReproducibleTrainingCollection))]
public class TrainerTests
{
    static TrainingOptions Short(string? output = null) => new()
    {
        DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 30, BatchSize = 8, SequenceLength = 64,
        LearningRate = 5e-3, WarmupSteps = 3, MaxEvalWindows = 48, OutputPath = output, Seed = 7,
    };

    [Fact]
    public void ASecondRunCannotWriteAFolderARunIsWriting()
    {
        using var dir = new TempFolder();
        string output = dir.File("run");
        using var a = SharedData.LoadStories();
        a.Adapters.Add("default", new LoraConfig(), seed: 1);
        using (var first = TrainingRun.Start(a, Short(output) with { MaxSteps = 2 }, null))
        {
            Assert.True(File.Exists(dir.File(".run.lock")));
            using var b = SharedData.LoadStories();
            b.Adapters.Add("default", new LoraConfig(), seed: 1);
            foreach (var second in new[] { Short(output) with { Resume = true }, Short(output) with { Overwrite = true } })
            {
                var e = Assert.Throws<LoraShellException>(() => Trainer.Run(b, second));
                Assert.Equal("OutputPathInUse", e.ErrorId);
                Assert.Contains(".run.lock", e.Message);
            }
            Assert.True(Directory.Exists(output)); // the refused -Force run moved nothing aside
        }
        Assert.False(File.Exists(dir.File(".run.lock"))); // let go with the run
        using var c = SharedData.LoadStories();
        c.Adapters.Add("default", new LoraConfig(), seed: 1);
        Assert.Equal(2, Trainer.Run(c, Short(output) with { MaxSteps = 2, Overwrite = true }).Steps);
    }

    [Fact]
    public void AnAdapterAddedWithoutASeedIsDrawnFromTheRunsSeedSoTheRunReproduces()
    {
        // Add-LoraAdapter | Start-LoraTraining -Seed: the adapter's A is drawn while the global generator is
        // anywhere; the run's seed must cover it, as when training adds the adapter itself.
        double[] Run(bool addUnseeded)
        {
            using var m = SharedData.LoadStories();
            if (addUnseeded)
            {
                manual_seed(Environment.TickCount64);
                m.Adapters.Add("default", new LoraConfig());
                Assert.True(m.Adapters.HasUnseededInitialization("default"));
            }
            var r = Trainer.Run(m, Short() with { MaxSteps = 4, Seed = 3 });
            Assert.False(m.Adapters.HasUnseededInitialization("default")); // trained now: never re-drawn
            return r.Losses.ToArray();
        }
        var first = Run(addUnseeded: true);
        Assert.Equal(first, Run(addUnseeded: true));
        Assert.Equal(first, Run(addUnseeded: false));
    }

    [Fact]
    public void LoraTrainingLowersValidationLossOnShakespeare()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" } }, seed: 1);
        var r = Trainer.Run(m, Short(dir.Path));
        Assert.Equal(30, r.Steps);
        Assert.Equal(30, r.Losses.Count);
        Assert.Equal(8960, r.TrainableParameters);
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss - 0.3, $"val loss {r.InitialValidationLoss} -> {r.FinalValidationLoss}");
        Assert.True(File.Exists(Path.Combine(r.AdapterPath!, "adapter_model.safetensors")));
        var metrics = File.ReadAllLines(r.MetricsPath!);
        Assert.Equal(31, metrics.Length); // step 0 evaluation + 30 steps
        Assert.Contains("\"tokens_per_s\"", metrics[1]);
        Assert.Contains("\"memory_mib\"", metrics[1]);
        Assert.True(r.PeakMemoryMiB > 0);

        // The saved adapter reproduces the trained model.
        using var fresh = SharedData.LoadStories();
        PeftAdapterFormat.Load(fresh.Adapters, r.AdapterPath!, "default");
        var text = File.ReadAllText(SharedData.TinyShakespeare)[^3000..];
        Assert.Equal(m.Perplexity(text).Loss, fresh.Perplexity(text).Loss, 6);
    }

    [Fact]
    public void FullFineTuningLowersValidationLossAndSavesAnHfFolder()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        var r = Trainer.Run(m, Short(dir.Path) with { Method = TrainingMethod.Full, LearningRate = 2e-3 });
        Assert.Equal(260032, r.TrainableParameters);
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss - 0.3, $"val loss {r.InitialValidationLoss} -> {r.FinalValidationLoss}");
        using var back = LoadedModel.Load(new ModelLoadOptions { Path = r.ModelPath! });
        Assert.Equal(m.Model.state_dict()["model.norm.weight"].data<float>().ToArray(), back.Model.state_dict()["model.norm.weight"].data<float>().ToArray());
    }

    [Fact]
    public void ResumedRunRepeatsTheUninterruptedLossCurve()
    {
        using var dirA = new TempFolder();
        using var dirB = new TempFolder();
        var options = Short() with { MaxSteps = 40, CheckpointEvery = 20, EvalEvery = 0, LearningRate = 3e-3 };
        var config = new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = new[] { "q_proj", "v_proj", "down_proj" } };

        using var a = SharedData.LoadStories();
        a.Adapters.Add("default", config, seed: 3);
        var full = Trainer.Run(a, options with { OutputPath = dirA.Path });

        using var b = SharedData.LoadStories();
        b.Adapters.Add("default", config, seed: 3);
        using var cts = new CancellationTokenSource();
        var partial = Trainer.Run(b, options with { OutputPath = dirB.Path },
            new InlineProgress(p => { if (p.Step == 20) cts.Cancel(); }), cts.Token);
        Assert.True(partial.Cancelled);
        Assert.Equal(20, partial.Steps);
        Assert.NotNull(partial.CheckpointPath);

        using var c = SharedData.LoadStories();
        c.Adapters.Add("default", config, seed: 99); // weights come from the checkpoint
        var resumed = Trainer.Run(c, options with { OutputPath = dirB.Path, Resume = true });
        Assert.Equal(20, resumed.ResumedFromStep);
        Assert.Equal(40, resumed.Losses.Count);
        for (int i = 0; i < 40; i++) Assert.True(Math.Abs(full.Losses[i] - resumed.Losses[i]) < 1e-4, $"step {i + 1}: {full.Losses[i]} vs {resumed.Losses[i]}");
        foreach (var (key, t) in PeftAdapterFormat.StateDict(a.Adapters, "default"))
        {
            var other = PeftAdapterFormat.StateDict(c.Adapters, "default").Single(p => p.Key == key).Value;
            Assert.True(TensorAssert.MaxAbsDiff(t, other) < 1e-5, key);
        }
        Assert.Equal(41, File.ReadAllLines(Path.Combine(dirB.Path, "metrics.jsonl")).Length);
    }

    sealed class InlineProgress : IProgress<TrainingProgress>
    {
        readonly Action<TrainingProgress> _a;
        public InlineProgress(Action<TrainingProgress> a) => _a = a;
        public void Report(TrainingProgress value) => _a(value);
    }

    [Fact]
    public void PromptTokensCarryNoLoss()
    {
        using var dir = new TempFolder();
        File.WriteAllLines(dir.File("pairs.jsonl"), new[]
        {
            "{\"prompt\": \"Q: What did Tom find?\", \"completion\": \"A: a red ball\"}",
            "{\"prompt\": \"Q: Who is Lily?\", \"completion\": \"A: a little girl\"}",
            "{\"text\": \"Tom and Lily played.\"}",
        });
        var tok = SharedData.Stories.Tokenizer!;
        var corpus = TokenCorpus.Load(new[] { dir.File("pairs.jsonl") }, new[] { dir.File("pairs.jsonl") }, 0, tok, null);
        var stream = corpus.Train;
        int promptLength = 1 + tok.Encode("Q: What did Tom find?").Count;
        int completionLength = tok.Encode("A: a red ball").Count;
        Assert.All(stream.Predict.Take(promptLength), p => Assert.False(p));
        Assert.All(stream.Predict.Skip(promptLength).Take(completionLength), p => Assert.True(p));

        // The loss the trainer computes equals cross-entropy over completion tokens only.
        var sampler = new BatchSampler(stream, stream.Length - 1, seed: 1);
        var (inputs, targets) = sampler.Batch(0, 1, CPU);
        var ignored = targets.eq(BatchSampler.IgnoreIndex).sum().item<long>();
        Assert.Equal(stream.Predict.Skip(1).Count(p => !p), ignored);
        using var _ = no_grad();
        var logits = SharedData.Stories.Model.forward(inputs)[0];
        var logp = nn.functional.log_softmax(logits, 1);
        double manual = 0; int n = 0;
        for (int i = 0; i + 1 < stream.Length; i++)
            if (stream.Predict[i + 1]) { manual -= logp[i, stream.Tokens[i + 1]].item<float>(); n++; }
        var lossFromTargets = nn.functional.cross_entropy(logits, targets[0], ignore_index: BatchSampler.IgnoreIndex).item<float>();
        Assert.Equal(manual / n, lossFromTargets, 4);
    }

    [Fact]
    public void TokenizedCorpusIsCachedAndNeverStale()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("a.txt"), string.Concat(Enumerable.Repeat("Tom had a red ball. ", 50)));
        var tok = SharedData.Stories.Tokenizer!;
        var first = TokenCorpus.Load(new[] { dir.File("a.txt") }, null, 0.1, tok, dir.File("cache"));
        var second = TokenCorpus.Load(new[] { dir.File("a.txt") }, null, 0.1, tok, dir.File("cache"));
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first.Train.Tokens, second.Train.Tokens);
        Assert.Equal(first.Validation.Tokens, second.Validation.Tokens);
        File.AppendAllText(dir.File("a.txt"), "Lily smiled.");
        var third = TokenCorpus.Load(new[] { dir.File("a.txt") }, null, 0.1, tok, dir.File("cache"));
        Assert.False(third.FromCache);
    }

    [Fact]
    public void ValidationIsTheLastTenPercent()
    {
        var tok = SharedData.Stories.Tokenizer!;
        string text = File.ReadAllText(SharedData.TinyShakespeare);
        var corpus = TokenCorpus.Load(new[] { SharedData.TinyShakespeare }, null, 0.1, tok, null);
        var expected = new List<int> { 1 };
        expected.AddRange(tok.Encode(text[(int)(text.Length * 0.9)..]));
        Assert.Equal(expected, corpus.Validation.Tokens);
    }

    static LoraShellException Fails(TrainingOptions o)
    {
        using var m = SharedData.LoadStories();
        return Assert.Throws<LoraShellException>(() => Trainer.Run(m, o));
    }

    [Fact]
    public void BadInputsAreNamed()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("empty.txt"), "");
        Assert.Equal("EmptyDataFile", Fails(Short() with { DataPaths = new[] { dir.File("empty.txt") } }).ErrorId);

        File.WriteAllText(dir.File("tiny.txt"), "Tom had a ball.");
        var e = Fails(Short() with { DataPaths = new[] { dir.File("tiny.txt") }, ValidationFraction = 0 });
        Assert.Equal("DataTooSmall", e.ErrorId);
        Assert.Contains("needs 65", e.Message);

        File.WriteAllLines(dir.File("bad.jsonl"), new[] { "{\"text\": \"fine\"}", "{\"text\": 3}" });
        e = Fails(Short() with { DataPaths = new[] { dir.File("bad.jsonl") } });
        Assert.Equal("InvalidJsonlLine", e.ErrorId);
        Assert.Contains("bad.jsonl' line 2", e.Message);

        Assert.Equal("InvalidLearningRate", Fails(Short() with { LearningRate = 0 }).ErrorId);
        Assert.Equal("InvalidLearningRate", Fails(Short() with { LearningRate = -1 }).ErrorId);

        File.WriteAllText(dir.File("afile"), "x");
        Assert.Equal("OutputPathNotWritable", Fails(Short(dir.File("afile/out"))).ErrorId);

        e = Fails(Short(dir.File("fresh")) with { Resume = true });
        Assert.Equal("NoCheckpoint", e.ErrorId);

        Assert.Equal("DataPathNotFound", Fails(Short() with { DataPaths = new[] { dir.File("missing.txt") } }).ErrorId);
    }

    [Fact]
    public void CheckpointFromAnotherSetupIsRefused()
    {
        using var dir = new TempFolder();
        var o = Short(dir.Path) with { MaxSteps = 4, CheckpointEvery = 2 };
        using (var m = SharedData.LoadStories())
        {
            m.Adapters.Add("default", new LoraConfig { R = 4, TargetModules = new[] { "q_proj" } });
            Trainer.Run(m, o);
        }
        using var other = SharedData.LoadStories();
        other.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj" } });
        var e = Assert.Throws<LoraShellException>(() => Trainer.Run(other, o with { Resume = true }));
        Assert.Equal("CheckpointMismatch", e.ErrorId);
    }

    [Fact]
    public void DivergingLossStopsWithAClearError()
    {
        using var m = SharedData.LoadStories();
        var e = Assert.Throws<LoraShellException>(() => Trainer.Run(m, Short() with { Method = TrainingMethod.Full, LearningRate = 1e12, MaxGradNorm = 0, WarmupSteps = 0, MaxEvalWindows = 1 }));
        Assert.Equal("NonFiniteLoss", e.ErrorId);
    }

    [Fact]
    public void ScheduleWarmsUpThenDecaysToTheFloor()
    {
        var s = new LearningRateSchedule(1.0, 10, 110, 0.1);
        Assert.Equal(0.1, s.At(0), 9);
        Assert.Equal(1.0, s.At(9), 9);
        Assert.Equal(1.0, s.At(10), 9);
        Assert.Equal(0.1, s.At(109), 9);
        Assert.True(s.At(60) < s.At(30));
    }
}
