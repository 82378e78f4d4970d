using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.Models.T5;
using LoraShell.Core.Session;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.T5;

/// <summary>
/// Text-to-text training of a small random T5 (Hugging Face folder with the llama2.c 512-token tokenizer beside
/// it) on SST-2 written as T5 writes it ("sst2 sentence: …" → "positive"/"negative"): LoRA, Ladder side-tuning
/// and full fine-tuning each lower the validation loss and report accuracy by generation; what they save
/// loads back and computes what was trained; bad setups are refused by name.
/// </summary>
[Collection(nameof(ReproducibleTrainingCollection))]
public class T5TrainingTests
{
    /// <summary>A random T5 (relu or gated-gelu) in HF layout with tok512.bin beside it.</summary>
    internal static string WriteRandomT5(TempFolder dir, bool gated = false, string name = "t5")
    {
        var config = new T5Config
        {
            VocabSize = 512, DModel = 64, DKv = 16, DFf = 128, NumLayers = 2, NumDecoderLayers = gated ? 3 : 2, NumHeads = 4,
            RelativeAttentionNumBuckets = 8, RelativeAttentionMaxDistance = 32, EosTokenId = 2, PadTokenId = 0, DecoderStartTokenId = 0,
            GatedFeedForward = gated, DenseActivation = gated ? "gelu_new" : "relu", TieWordEmbeddings = !gated,
        };
        manual_seed(21);
        using var model = new T5ForConditionalGeneration(config);
        using (no_grad()) // as transformers' T5 initialises: the embedding N(0, 1), projections N(0, 1/√in), norms at 1
            foreach (var (key, p) in model.named_parameters())
                if (key == "shared.weight") p.normal_(0, 1);
                else if (!key.Contains("layer_norm")) p.normal_(0, 1 / Math.Sqrt(p.shape[^1]));
        string folder = dir.File(name);
        T5Writer.Save(model, folder, overwrite: false, new[] { SharedData.Tok512 });
        return folder;
    }

    /// <summary>SST-2 as text-to-text JSONL: the first <paramref name="count"/> sentences of a split.</summary>
    internal static string WriteSst2(TempFolder dir, string split, int count)
    {
        var lines = File.ReadLines(SharedData.Path_("data", "sst2", $"{split}.tsv")).Skip(1).Take(count).Select(line =>
        {
            int tab = line.LastIndexOf('\t');
            return new JsonObject { ["input"] = "sst2 sentence: " + line[..tab].Trim(), ["target"] = line[(tab + 1)..] == "1" ? "positive" : "negative" }.ToJsonString();
        });
        string path = dir.File($"sst2-{split}.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    static TrainingOptions Options(TempFolder dir, TrainingMethod method, string output) => new()
    {
        Method = method, DataPaths = new[] { WriteSst2(dir, "train", 320) }, ValidationPaths = new[] { WriteSst2(dir, "validation", 48) },
        MaxSteps = 40, BatchSize = 8, SequenceLength = 64, LearningRate = method == TrainingMethod.Full ? 1e-3 : 2e-2, WarmupSteps = 2,
        OutputPath = dir.File(output), Seed = 7,
    };

    static Tensor Logits(LoadedModel loaded, T5Encoding? _ = null)
    {
        var model = loaded.EncoderDecoder!;
        var input = tensor(new long[] { 1, 40, 41, 42, 43, 2 }).unsqueeze(0);
        var labels = tensor(new long[] { 50, 51, 2 }).unsqueeze(0);
        using var __ = no_grad();
        if (loaded.EncoderDecoderSideNetwork is { } side)
            return model.Head(side.DecoderHidden(model, model.ShiftRight(labels), side.Encode(model, input, null)));
        return model.Logits(input, model.ShiftRight(labels));
    }

    static void Close(Tensor expected, Tensor actual, double tolerance, string what)
        => TensorAssert.Close(expected.to(ScalarType.Float32).flatten().data<float>().ToArray(), actual.to(ScalarType.Float32).flatten().data<float>().ToArray(), tolerance, what);

    [Fact]
    public void Lora_lowers_the_validation_loss_and_saves_a_seq2seq_adapter_with_t5_defaults()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = WriteRandomT5(dir) });
        Assert.True(loaded.IsEncoderDecoder);
        var result = Trainer.Run(loaded, Options(dir, TrainingMethod.Lora, "lora"));

        Assert.Equal("TextToText", result.Task);
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss - 0.1, $"validation loss {result.InitialValidationLoss} → {result.FinalValidationLoss}");
        Assert.NotNull(result.FinalValidationAccuracy);
        Assert.Equal(new[] { "negative", "positive" }, result.Labels);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(result.AdapterPath!, "adapter_config.json")))!;
        Assert.Equal("SEQ_2_SEQ_LM", (string?)config["task_type"]);
        Assert.Equal(new[] { "q", "v" }, config["target_modules"]!.AsArray().Select(n => (string)n!).OrderBy(n => n));
        // Only the adapter trained: 2 stacks' q and v, r 8.
        int blocks = 2 + 2, perModule = 8 * 64 + 64 * 8;
        Assert.Equal(blocks * 2 * perModule + /* cross-attention q, v in the decoder */ 2 * 2 * perModule, result.TrainableParameters);
    }

    [Fact]
    public void Ladder_trains_beside_a_frozen_backbone_and_its_side_network_loads_back()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = WriteRandomT5(dir, gated: true) });
        var before = loaded.EncoderDecoder!.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        var untrained = Logits(loaded);
        var o = Options(dir, TrainingMethod.Ladder, "ladder") with { Ladder = new LadderConfig { ReductionFactor = 2 } };
        var result = Trainer.Run(loaded, o);

        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss - 0.1, $"validation loss {result.InitialValidationLoss} → {result.FinalValidationLoss}");
        Assert.Equal(2 + 3, result.GateValues!.Length); // a ladder per encoder and decoder layer
        foreach (var (name, value) in loaded.EncoderDecoder.state_dict())
            Assert.True(value.eq(before[name]).all().item<bool>(), $"backbone weight {name} changed");
        Assert.All(loaded.EncoderDecoder.parameters(), p => Assert.Null(p.grad));

        var trained = Logits(loaded);
        Assert.False(trained.allclose(untrained, 1e-3, 1e-3), "the side network changed nothing");
        var side = loaded.EncoderDecoderSideNetwork!;
        loaded.EncoderDecoderSideNetwork = T5LadderSideNetwork.Load(result.SideNetworkPath!, loaded.EncoderDecoder);
        Close(trained, Logits(loaded), 1e-5, "reloaded side network");
        side.Dispose();
    }

    [Fact]
    public void A_new_side_network_starts_as_the_backbone_whatever_its_pruning()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = WriteRandomT5(dir, gated: true) });
        var backbone = Logits(loaded);
        foreach (var init in new[] { LadderInit.Magnitude, LadderInit.Fisher, LadderInit.Random })
        {
            var o = Options(dir, TrainingMethod.Ladder, $"ladder-{init}") with { MaxSteps = 1, LearningRate = 1e-12, Ladder = new LadderConfig { ReductionFactor = 4, Init = init, SideLayers = new[] { 1 } } };
            var result = Trainer.Run(loaded, o);
            Assert.Equal(2, result.GateValues!.Length); // layer 1 of the encoder and of the decoder
            Close(backbone, Logits(loaded), 1e-4, $"untrained side network ({init})");
            loaded.EncoderDecoderSideNetwork!.Dispose();
            loaded.EncoderDecoderSideNetwork = null;
        }
    }

    [Fact]
    public void Full_fine_tuning_saves_a_t5_folder_that_loads_to_the_trained_model()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = WriteRandomT5(dir) });
        var result = Trainer.Run(loaded, Options(dir, TrainingMethod.Full, "full") with { MaxSteps = 12 });
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss, $"validation loss {result.InitialValidationLoss} → {result.FinalValidationLoss}");
        using var saved = LoadedModel.Load(new ModelLoadOptions { Path = result.ModelPath! });
        Assert.NotNull(saved.Tokenizer); // tok512.bin copied beside it
        Close(Logits(loaded), Logits(saved), 1e-5, "saved model");
    }

    [Fact]
    public void Text_to_text_pairs_are_tokenized_as_transformers_t5_does()
    {
        var tokenizer = SharedData.Stories.Tokenizer!;
        var source = Core.Tokenizers.TextToTextEncoding.Source(tokenizer, "Lily was happy", 2);
        var target = Core.Tokenizers.TextToTextEncoding.Target(tokenizer, "positive", 2);
        Assert.Equal(tokenizer.EncodeWithSpecialTokens("Lily was happy").Select(i => (long)i).Append(2), source);
        Assert.Equal(tokenizer.Encode("positive").Select(i => (long)i).Append(2), target);
        var (inputs, mask, labels) = TextToTextObjective.Collate(new[] { new TextPair(new long[] { 5, 6, 2 }, new long[] { 7, 2 }, "x"), new TextPair(new long[] { 9, 2 }, new long[] { 8, 9, 10, 2 }, "y") }, 0, CPU);
        Assert.Equal(new long[] { 5, 6, 2, 9, 2, 0 }, inputs.data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 0 }, mask.data<long>().ToArray());
        Assert.Equal(new long[] { 7, 2, -100, -100, 8, 9, 10, 2 }, labels.data<long>().ToArray());
    }

    [Fact]
    public void Bad_setups_are_refused_by_name()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = WriteRandomT5(dir) });
        var o = Options(dir, TrainingMethod.Lora, "bad");
        string Refused(TrainingOptions options, ITrainingSubject? subject = null) => Assert.Throws<LoraShellException>(() => Trainer.Run(subject ?? loaded, options)).ErrorId;

        File.WriteAllText(dir.File("plain.txt"), "Once upon a time.");
        Assert.Equal("TextToTextNeedsPairs", Refused(o with { DataPaths = new[] { dir.File("plain.txt") } }));
        File.WriteAllText(dir.File("text.jsonl"), "{\"text\": \"Once upon a time.\"}\n");
        Assert.Equal("TextToTextNeedsPairs", Refused(o with { DataPaths = new[] { dir.File("text.jsonl") } }));
        Assert.Equal("NotSupportedForT5", Refused(o with { GradientCheckpointing = true }));
        Assert.Equal("NotSupportedForT5", Refused(o with { Task = TrainingTask.Classification }));
        Assert.Equal("TextToTextNeedsEncoderDecoder", Refused(o with { Task = TrainingTask.TextToText }, SharedData.Stories));
        Assert.Equal("InvalidReductionFactor", Refused(o with { Method = TrainingMethod.Ladder, Ladder = new LadderConfig { ReductionFactor = 3 } }));
        Assert.Equal("InvalidSideLayers", Refused(o with { Method = TrainingMethod.Ladder, Ladder = new LadderConfig { ReductionFactor = 2, SideLayers = new[] { 5 } } }));
        Assert.False(Directory.Exists(dir.File("bad")), "a refused run left its output folder");
        var e = Assert.Throws<LoraShellException>(() => loaded.Model);
        Assert.Equal("NotSupportedForT5", e.ErrorId);
    }
}

/// <summary>Scoring and generation of a loaded T5, with and without a side network beside it.</summary>
public class T5SessionTests
{
    [Fact]
    public void Scoring_a_target_is_the_models_loss_for_those_labels()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = T5TrainingTests.WriteRandomT5(dir) });
        var tokenizer = loaded.Tokenizer!;
        var result = loaded.ScoreTarget("sst2 sentence: a gripping film", "positive");
        var input = Core.Tokenizers.TextToTextEncoding.Source(tokenizer, "sst2 sentence: a gripping film", 2);
        var labels = Core.Tokenizers.TextToTextEncoding.Target(tokenizer, "positive", 2);
        using var _ = no_grad();
        var (_, loss) = loaded.EncoderDecoder!.LogitsAndLoss(tensor(input).unsqueeze(0), tensor(labels).unsqueeze(0));
        Assert.Equal(loss.item<float>(), result.Loss, 5);
        Assert.Equal(labels.Length, result.Tokens);
        Assert.Equal(Math.Exp(result.Loss), result.Perplexity, 6);
        Assert.Equal("NeedsEncoderDecoder", Assert.Throws<LoraShellException>(() => SharedData.Stories.ScoreTarget("a", "b")).ErrorId);
    }

    [Fact]
    public void Generation_with_a_side_network_reuses_both_caches_and_equals_recomputing()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = T5TrainingTests.WriteRandomT5(dir, gated: true) });
        manual_seed(3);
        loaded.EncoderDecoderSideNetwork = new T5LadderSideNetwork(new LadderConfig { ReductionFactor = 2 }, loaded.EncoderDecoder!.Config);
        using (no_grad()) loaded.EncoderDecoderSideNetwork.up.weight!.normal_(0, 0.5); // a side network that changes the output
        var input = Core.Tokenizers.TextToTextEncoding.Source(loaded.Tokenizer!, "Once upon a time", 2);
        var stops = new long[] { 2 };
        var cached = Core.Inference.T5Generation.Decode(loaded.EncoderDecoderPass, input, 10, l => l.argmax().item<long>(), stops, useCache: true);
        var recomputed = Core.Inference.T5Generation.Decode(loaded.EncoderDecoderPass, input, 10, l => l.argmax().item<long>(), stops, useCache: false);
        var backboneOnly = Core.Inference.T5Generation.Decode(new EncoderDecoderPass(loaded.EncoderDecoder), input, 10, l => l.argmax().item<long>(), stops);
        Assert.Equal(recomputed, cached);
        Assert.NotEqual(backboneOnly, cached);

        var generated = loaded.Generate(new Core.Inference.GenerationOptions { Prompt = "Once upon a time", MaxTokens = 10, Temperature = 0 });
        Assert.Equal(cached.TakeWhile(t => t != 2).Select(t => (int)t), generated.GeneratedTokens);
        Assert.Equal(cached.Contains(2) ? "EndOfText" : "MaxTokens", generated.StopReason);
        Assert.Equal(loaded.Tokenizer!.Decode(generated.GeneratedTokens, skipSpecialTokens: true), generated.Text);
    }

    [Fact]
    public void A_side_network_attaches_only_to_the_backbone_it_was_built_for()
    {
        using var dir = new TempFolder();
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = T5TrainingTests.WriteRandomT5(dir, gated: true) });
        using var side = new T5LadderSideNetwork(new LadderConfig { ReductionFactor = 2 }, loaded.EncoderDecoder!.Config);
        side.Save(dir.File("side"), overwrite: false);
        loaded.AttachSideNetwork(dir.File("side"));
        Assert.NotNull(loaded.EncoderDecoderSideNetwork);
        using var other = LoadedModel.Load(new ModelLoadOptions { Path = T5TrainingTests.WriteRandomT5(dir, gated: false, name: "relu") });
        Assert.Equal("SideNetworkForAnotherBackbone", Assert.Throws<LoraShellException>(() => other.AttachSideNetwork(dir.File("side"))).ErrorId);
        var stories = SharedData.LoadStories();
        try { Assert.Equal("SideNetworkForAnotherBackbone", Assert.Throws<LoraShellException>(() => stories.AttachSideNetwork(dir.File("side"))).ErrorId); }
        finally { stories.Dispose(); }
    }
}
