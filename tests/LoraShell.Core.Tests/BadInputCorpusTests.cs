using System.Text;
using System.Text.Json.Nodes;
using LoraShell.Core.Delta;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// A corpus of bad input and failures, generated in the tests, one class at a time: every case ends in a
/// LoraShell error with a specific id that names what was wrong, and leaves what existed intact and
/// nothing half-made behind.
/// </summary>
[Collection(nameof(ReproducibleTrainingCollection))]
public class BadInputCorpusTests
{
    static string Shakespeare(TempFolder dir, int chars = 20_000)
    {
        string path = dir.File("s.txt");
        if (!File.Exists(path)) File.WriteAllText(path, File.ReadAllText(SharedData.TinyShakespeare)[..chars]);
        return path;
    }

    static TrainingOptions Diverging(TempFolder dir, TrainingMethod method, int checkpointEvery, string output = "out") => new()
    {
        Method = method, DataPaths = new[] { Shakespeare(dir) }, MaxSteps = 10, BatchSize = 2, SequenceLength = 32,
        LearningRate = 1e10, CheckpointEvery = checkpointEvery, OutputPath = dir.File(output), Seed = 3, KeepCheckpoints = 0,
    };

    static LoraShellException Throws(Action action) => Assert.Throws<LoraShellException>(action);

    // ---- finding 1: the "last good" checkpoint after a NaN stop is good ----

    [Theory]
    [InlineData(TrainingMethod.Lora, 2)]
    [InlineData(TrainingMethod.Full, 1)]
    public void AfterANaNStopEveryCheckpointLeftIsGoodAndTheNamedOneScoresAFiniteLoss(TrainingMethod method, int every)
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        if (method == TrainingMethod.Lora) m.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj", "v_proj" } }, seed: 1);
        var e = Throws(() => Trainer.Run(m, Diverging(dir, method, every)));
        Assert.Equal("NonFiniteLoss", e.ErrorId);
        string root = Path.Combine(dir.File("out"), TrainingCheckpoint.Folder);
        foreach (var checkpoint in Directory.Exists(root) ? Directory.GetDirectories(root) : Array.Empty<string>())
        {
            foreach (var file in Directory.GetFiles(checkpoint, "*.safetensors", SearchOption.AllDirectories).Where(f => !f.EndsWith(TrainingCheckpoint.OptimizerFile)))
            {
                using var st = SafetensorsFile.Open(file);
                foreach (var name in st.Names) { using var t = st.ReadTensor(name); Assert.True(t.isfinite().all().item<bool>(), $"{file}: {name}"); }
            }
        }
        var named = System.Text.RegularExpressions.Regex.Match(e.Message, "'([^']*step-\\d+)'");
        if (!named.Success) { Assert.Contains("No checkpoint had finite weights", e.Message); return; }
        // The checkpoint it names scores a finite loss when loaded.
        using var fresh = SharedData.LoadStories();
        if (method == TrainingMethod.Lora) PeftAdapterFormat.Load(fresh.Adapters, Path.Combine(named.Groups[1].Value, Trainer.AdapterFolder), "default");
        using var back = method == TrainingMethod.Full ? LoadedModel.Load(new ModelLoadOptions { Path = Path.Combine(named.Groups[1].Value, Trainer.ModelFolder), TokenizerPath = SharedData.Tok512 }) : null;
        double loss = (back ?? fresh).Perplexity(File.ReadAllText(Shakespeare(dir))[..2000]).Loss;
        Assert.True(double.IsFinite(loss), $"{named.Groups[1].Value} scores {loss}");
    }

    // ---- finding 3 and leftovers: the output folder ----

    [Fact]
    public void AUsedOutputFolderIsRefusedUnlessResumedOrReplacedAsAWhole()
    {
        using var dir = new TempFolder();
        var o = Diverging(dir, TrainingMethod.Lora, 0) with { LearningRate = 1e-3, MaxSteps = 2 };
        using var m = SharedData.LoadStories();
        Trainer.Run(m, o);
        File.WriteAllText(Path.Combine(o.OutputPath!, "notes.txt"), "mine");
        var e = Throws(() => Trainer.Run(m, o));
        Assert.Equal("OutputPathNotEmpty", e.ErrorId);
        Assert.Contains("notes.txt", e.Message);
        Assert.True(File.Exists(Path.Combine(o.OutputPath!, "notes.txt")));

        var replaced = Trainer.Run(m, o with { Overwrite = true });
        Assert.False(File.Exists(Path.Combine(o.OutputPath!, "notes.txt")), "-Force replaces the folder as a whole");
        Assert.True(Directory.Exists(replaced.AdapterPath));
        Assert.Empty(Directory.GetDirectories(dir.Path, ".out.replaced-*"));
    }

    [Fact]
    public void AFailedRunLeavesNoFolderAndPutsBackAReplacedOne()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        string binary = dir.File("noise.txt");
        File.WriteAllBytes(binary, new byte[4096]);
        var o = new TrainingOptions { DataPaths = new[] { binary }, MaxSteps = 2, BatchSize = 2, SequenceLength = 32, OutputPath = dir.File("new") };
        Assert.Equal("DataNotText", Throws(() => Trainer.Run(m, o)).ErrorId);
        Assert.False(Directory.Exists(dir.File("new")), "a failed run removes the folder it created (and its .cache)");

        Directory.CreateDirectory(dir.File("old"));
        File.WriteAllText(dir.File("old/keep.txt"), "old run");
        Throws(() => Trainer.Run(m, o with { OutputPath = dir.File("old"), Overwrite = true }));
        Assert.Equal("old run", File.ReadAllText(dir.File("old/keep.txt")));
        Assert.Empty(Directory.GetDirectories(dir.Path, ".old.replaced-*"));
    }

    [Fact]
    public void CheckpointsArePrunedToTheNewestNAndTheNewestStays()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        var o = Diverging(dir, TrainingMethod.Lora, 1) with { LearningRate = 1e-3, MaxSteps = 7, KeepCheckpoints = 2 };
        Trainer.Run(m, o);
        var left = Directory.GetDirectories(Path.Combine(o.OutputPath!, TrainingCheckpoint.Folder)).Select(Path.GetFileName).OrderBy(n => n).ToList();
        Assert.Equal(new[] { "step-000005", "step-000006" }, left);
    }

    // ---- finding 2: writers with -Force never destroy the old folder ----

    [Fact]
    public void SavingSeveralAdaptersOverAFolderLeavesItIntactWhenOneCannotBeSaved()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj" }, Init = LoraInit.Random }, seed: 1);
        m.Adapters.Add("second", new LoraConfig { R = 2, TargetModules = new[] { "v_proj" }, Init = LoraInit.Random }, seed: 2);
        string target = dir.File("adapters");
        PeftAdapterFormat.SaveAll(m.Adapters, new[] { ("default", ""), ("second", "second") }, target, overwrite: false, null);
        var before = Directory.GetFiles(target, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        var layer = m.Adapters.Layers().First(l => l.Layer.Adapters.Contains("second")).Layer;
        using (no_grad()) layer.lora_B["second"].weight![0, 0] = float.NaN;
        var e = Throws(() => PeftAdapterFormat.SaveAll(m.Adapters, new[] { ("default", ""), ("second", "second") }, target, overwrite: true, null));
        Assert.Equal("NonFiniteAdapter", e.ErrorId);
        Assert.Equal(before.Keys.OrderBy(k => k), Directory.GetFiles(target, "*", SearchOption.AllDirectories).OrderBy(k => k));
        foreach (var (file, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(file));
        Assert.Single(Directory.GetFileSystemEntries(dir.Path)); // no temporary sibling left
    }

    [Theory]
    [InlineData("a\nb")]
    [InlineData("nul\0name")]
    [InlineData("../escape")]
    [InlineData("with.dot")]
    public void AdapterNamesThatCannotBeFolderNamesAreRefused(string name)
    {
        using var m = SharedData.LoadStories();
        var e = Throws(() => m.Adapters.Add(name, new LoraConfig { R = 2 }));
        Assert.Equal("InvalidAdapterName", e.ErrorId);
        Assert.DoesNotContain('\0', e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal("InvalidAdapterName", Throws(() => m.Adapters.Add(new string('x', 300), new LoraConfig { R = 2 })).ErrorId);
    }

    [Fact]
    public void AnOutputWhoseParentIsAFileIsANamedError()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("file"), "");
        using var m = SharedData.LoadStories();
        m.Adapters.Add("default", new LoraConfig { R = 2 }, seed: 1);
        var e = Throws(() => PeftAdapterFormat.Save(m.Adapters, "default", Path.Combine(dir.File("file"), "adapter"), false, null));
        Assert.Equal("OutputPathNotWritable", e.ErrorId);
        Assert.Contains(dir.File("file"), e.Message);
        var proc = Throws(() => HuggingFaceWriter.Save(m.Model, "/proc/lorashell-test/model", overwrite: false));
        Assert.Equal("OutputPathNotWritable", proc.ErrorId);
    }

    // ---- finding 5: config sizes are checked against the checkpoint before anything is built ----

    [Theory]
    [InlineData("num_hidden_layers", 100000L)]
    [InlineData("num_hidden_layers", 2147483647L)]
    [InlineData("intermediate_size", 1073741824L)]
    [InlineData("vocab_size", 1073741824L)]
    public void ConfigSizesThatDoNotFitTheCheckpointFailFastWithoutAllocating(string key, long value)
    {
        using var dir = new TempFolder();
        using (var m = SharedData.LoadStories()) m.SaveHuggingFace(dir.File("hf"), false);
        string config = Path.Combine(dir.File("hf"), "config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json[key] = value;
        File.WriteAllText(config, json.ToJsonString());
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Throws(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.File("hf") }));
        Assert.True(e.ErrorId is "WeightsDoNotMatchModel" or "InvalidModelConfig", e.ErrorId);
        Assert.Contains(value.ToString(), e.Message);
        Assert.True(clock.Elapsed.TotalSeconds < 5, $"took {clock.Elapsed}");
    }

    [Fact]
    public void Llama2cHeadersWhoseSizesOverflowAreNamed()
    {
        using var dir = new TempFolder();
        var header = new[] { 1 << 30, 1 << 30, 1 << 30, 1 << 20, 1 << 20, 1 << 30, 1 << 20 };
        File.WriteAllBytes(dir.File("huge.bin"), header.SelectMany(BitConverter.GetBytes).Concat(new byte[64]).ToArray());
        var e = Throws(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.File("huge.bin") }));
        Assert.Equal("InvalidLlama2cCheckpoint", e.ErrorId);
    }

    // ---- class: bad values silently accepted ----

    [Fact]
    public void NaNInModelWeightsIsRefusedNamingTheTensor()
    {
        using var dir = new TempFolder();
        using (var m = SharedData.LoadStories())
        {
            using (no_grad()) ((Models.Blocks.LinearProjection)m.Model.Module("model.layers.2.mlp.up_proj")).weight[0, 0] = float.PositiveInfinity;
            m.SaveHuggingFace(dir.File("hf"), false);
        }
        var e = Throws(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.File("hf") }));
        Assert.Equal("NonFiniteWeights", e.ErrorId);
        Assert.Contains("model.layers.2.mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void NaNInAdapterWeightsIsRefusedOnLoad()
    {
        using var dir = new TempFolder();
        using (var m = SharedData.LoadStories())
        {
            m.Adapters.Add("default", new LoraConfig { R = 2, Init = LoraInit.Random }, seed: 1);
            PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), false, null);
        }
        string weights = Path.Combine(dir.File("a"), PeftAdapterFiles.WeightsFile);
        using (var st = SafetensorsFile.Open(weights))
        {
            var tensors = st.Names.Select(n => KeyValuePair.Create(n, st.ReadTensor(n))).ToList();
            tensors[0].Value[0, 0] = float.NaN;
            st.Dispose();
            SafetensorsWriter.Write(weights, tensors, SafetensorsHeader.PyTorchMetadata);
        }
        using var fresh = SharedData.LoadStories();
        Assert.Equal("NonFiniteWeights", Throws(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default")).ErrorId);
    }

    [Fact]
    public void AdaptersThatDoNotFitTheModelAreRefusedOrWarnedAbout()
    {
        using var dir = new TempFolder();
        using (var m = SharedData.LoadStories())
        {
            m.Adapters.Add("default", new LoraConfig { R = 2, TargetModules = new[] { "q_proj" }, ModulesToSave = new[] { "model.norm" } }, seed: 1);
            PeftAdapterFormat.Save(m.Adapters, "default", dir.File("a"), false, "meta-llama/Llama-3.2-1B");
        }
        string configPath = Path.Combine(dir.File("a"), PeftAdapterFiles.ConfigFile);
        var warnings = new List<string>();
        using (var fresh = SharedData.LoadStories())
            PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default", warnings.Add, SharedData.Stories260K);
        Assert.Contains(warnings, w => w.Contains("Llama-3.2-1B") && w.Contains("same model"));

        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["layers_to_transform"] = new JsonArray(0, 7);
        File.WriteAllText(configPath, config.ToJsonString());
        using (var fresh = SharedData.LoadStories())
        {
            var e = Throws(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default"));
            Assert.Equal("AdapterDoesNotMatchModel", e.ErrorId);
            Assert.Contains("layers_to_transform 7", e.Message);
        }

        config["layers_to_transform"] = null;
        config["modules_to_save"] = new JsonArray("model.norm", "lm_head");
        File.WriteAllText(configPath, config.ToJsonString());
        using (var fresh = SharedData.LoadStories())
            Assert.Equal("AdapterDoesNotMatchModel", Throws(() => PeftAdapterFormat.Load(fresh.Adapters, dir.File("a"), "default")).ErrorId);
    }

    [Fact]
    public void TextThatIsNotTextIsRefusedOrFlagged()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        var random = new byte[8192];
        new Random(5).NextBytes(random);
        random[100] = 0;
        File.WriteAllBytes(dir.File("random.txt"), random);
        var o = new TrainingOptions { DataPaths = new[] { dir.File("random.txt") }, MaxSteps = 1, BatchSize = 1, SequenceLength = 16 };
        var e = Throws(() => Trainer.Run(m, o));
        Assert.Equal("DataNotText", e.ErrorId);
        Assert.Contains("offset 100", e.Message);

        // Latin-1 text is legal but suspicious: it trains, and the log says why the text looks odd.
        File.WriteAllBytes(dir.File("latin1.txt"), Encoding.Latin1.GetBytes(string.Concat(Enumerable.Repeat("Déjà vu, café crème. ", 200))));
        var log = new List<string>();
        Trainer.Run(m, o with { DataPaths = new[] { dir.File("latin1.txt") } }, log: new RunLog(log.Add));
        Assert.Contains(log, l => l.Contains("not valid UTF-8"));
    }

    [Fact]
    public void ClassificationDataWithOnlyEmptySentencesIsRefused()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("empty.tsv"), "sentence\tlabel\n\t0\n \t1\n\t1\n");
        using var m = SharedData.LoadStories();
        var e = Throws(() => Trainer.Run(m, new TrainingOptions { DataPaths = new[] { dir.File("empty.tsv") }, MaxSteps = 1, BatchSize = 2, SequenceLength = 16 }));
        Assert.Equal("EmptySentences", e.ErrorId);
    }

    [Fact]
    public void ATokenizerWithANaNScoreIsRefused()
    {
        using var dir = new TempFolder();
        var bytes = File.ReadAllBytes(SharedData.Tok512);
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 4); // the first token's score
        File.WriteAllBytes(dir.File("tok.bin"), bytes);
        var e = Throws(() => Llama2cTokenizer.Load(dir.File("tok.bin")));
        Assert.Equal("InvalidTokenizer", e.ErrorId);
        Assert.Contains("NaN", e.Message);
    }

    [Fact]
    public void ASequenceLongerThanTheModelsContextIsRefusedOrFlagged()
    {
        using var dir = new TempFolder();
        // Learned positions (GPT-2's 16 here) end: refused.
        using (var gpt2 = new LoadedModel(Families.TinyFamilies.Create(Families.TinyFamilies.All.Single(c => c.Name == "gpt2")), Llama2cTokenizer.Load(SharedData.Tok512), "gpt2", ModelLoader.HuggingFaceFormat))
        {
            var e = Throws(() => Trainer.Run(gpt2, new TrainingOptions { DataPaths = new[] { Shakespeare(dir) }, MaxSteps = 1, SequenceLength = 32 }));
            Assert.Equal("SequenceLengthTooLong", e.ErrorId);
            Assert.Contains("16 learned positions", e.Message);
        }
        // Rotary positions go on past stories260K's 512: legal, and said so.
        using var m = SharedData.LoadStories();
        var log = new List<string>();
        Trainer.Run(m, new TrainingOptions { DataPaths = new[] { Shakespeare(dir) }, MaxSteps = 1, BatchSize = 1, SequenceLength = 600, MaxEvalWindows = 1 }, log: new RunLog(log.Add));
        Assert.Contains(log, l => l.Contains("longer than the model's context") && l.Contains("512"));
    }

    [Fact]
    public void SvdDeltaOfACheckpointWithNaNNamesTheTensor()
    {
        using var dir = new TempFolder();
        var w = randn(16, 8);
        SafetensorsWriter.Write(dir.File("base.safetensors"), new[] { KeyValuePair.Create("m.w.weight", w) });
        var bad = w.clone();
        bad[3, 3] = float.NaN;
        SafetensorsWriter.Write(dir.File("ft.safetensors"), new[] { KeyValuePair.Create("m.w.weight", bad) });
        var e = Throws(() => SvdDeltaCompressor.Run(new SvdDeltaOptions
        {
            BasePath = dir.File("base.safetensors"), FineTunedPath = dir.File("ft.safetensors"), OutputPath = dir.File("delta"), Policy = new RankPolicy { Rank = 2 },
        }, _ => { }));
        Assert.Equal("NonFiniteWeights", e.ErrorId);
        Assert.Contains("m.w.weight", e.Message);
        Assert.False(Directory.Exists(dir.File("delta")));
        Assert.Empty(Directory.GetFiles(dir.Path, ".tensors-*"));
    }
}
