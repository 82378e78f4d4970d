using System.Text;
using System.Text.Json.Nodes;
using LoraShell.Core.IO;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Tests;

/// <summary>
/// Bad input in the newer formats (issue 32): family configs transformers refuses, and the inputs that
/// surfaced as raw .NET or libtorch errors. Each is a named LoraShellException now.
/// </summary>
public class BadInputRoundTwoTests
{
    static JsonObject Llama() => (JsonObject)TinyFamilies.All.Single(c => c.Name == "llama-linear").Config.DeepClone();

    [Theory]
    [InlineData("""{"factor": 2.0}""", "without a type")]
    [InlineData("""{"type": "linear"}""", "without factor")]
    [InlineData("""{"type": "dynamic"}""", "without factor")]
    [InlineData("""{"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 32}""", "without low_freq_factor")]
    [InlineData("""{"rope_type": "llama3", "factor": 8.0}""", "without low_freq_factor, high_freq_factor, original_max_position_embeddings")]
    public void RopeScalingThatTransformersRefusesIsRefused(string scaling, string expected)
    {
        var config = Llama();
        config["rope_scaling"] = JsonNode.Parse(scaling);
        var e = Assert.Throws<LoraShellException>(() => ModelConfig.FromJson(config.ToJsonString(), "config.json"));
        Assert.Equal("InvalidRopeScaling", e.ErrorId);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AConfigWithoutModelTypeIsReadAsTheClassItsArchitecturesName()
    {
        var config = Llama();
        config.Remove("model_type");
        config["architectures"] = new JsonArray("MistralForCausalLM");
        var read = ModelConfig.FromJson(config.ToJsonString(), "config.json");
        Assert.Equal("mistral", read.ModelType);
        Assert.Equal(4096, read.SlidingWindow); // MistralConfig's default window, which reading it as Llama dropped
        config.Remove("architectures");
        Assert.Equal("llama", ModelConfig.FromJson(config.ToJsonString(), "config.json").ModelType);
    }

    [Fact]
    public void ATiedHeadBesideAnLmHeadInTheFileSaysWhichWeightIsUsed()
    {
        using var dir = new TempFolder();
        var c = TinyFamilies.All.Single(x => x.Name == "qwen2");
        using (var m = TinyFamilies.Create(c)) HuggingFaceWriter.Save(m, dir.Path + "/m", overwrite: false); // untied: lm_head.weight in the file
        var config = JsonNode.Parse(File.ReadAllText(dir.File("m/config.json")))!.AsObject();
        config["tie_word_embeddings"] = true;
        File.WriteAllText(dir.File("m/config.json"), config.ToJsonString());
        using var loaded = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("m") });
        Assert.Contains(loaded.LoadWarnings, w => w.Contains("lm_head.weight is not used") && w.Contains("tie_word_embeddings"));
    }

    static string Safetensors(TempFolder dir, string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        string path = dir.File("bad.safetensors");
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((long)json.Length));
        f.Write(json);
        f.Write(new byte[dataBytes]);
        return path;
    }

    [Fact]
    public void ASafetensorsShapeWhoseByteCountOverflowsIsNamed()
    {
        using var dir = new TempFolder();
        // 2^61 float32 elements fit a long; their 2^63 bytes do not.
        string path = Safetensors(dir, """{"w": {"dtype": "F32", "shape": [2305843009213693952], "data_offsets": [0, 4]}}""", 4);
        var e = Assert.Throws<LoraShellException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal("InvalidSafetensors", e.ErrorId);
        Assert.Contains("too large", e.Message);
    }

    [Fact]
    public void ATokenizerIdBeyondAnyVocabularyIsNamed()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("tokenizer.json"), """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 2147483647}, "merges": []}}""");
        var e = Assert.Throws<LoraShellException>(() => HuggingFaceTextTokenizer.Load(dir.Path));
        Assert.Equal("UnsupportedTokenizer", e.ErrorId);
        Assert.Contains("2147483647", e.Message);
    }

    [Fact]
    public void AnIdTheTokenizerAddsBeyondTheModelsVocabularyIsRefusedWhenLoading()
    {
        using var dir = new TempFolder();
        using (var m = TinyFamilies.Create(TinyFamilies.All.Single(x => x.Name == "llama-linear"))) HuggingFaceWriter.Save(m, dir.File("m"), overwrite: false);
        string tok = dir.File("tok");
        Directory.CreateDirectory(tok);
        File.WriteAllText(Path.Combine(tok, "tokenizer.json"), """
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
             "post_processor": {"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
               "special_tokens": {"<s>": {"id": "<s>", "ids": [600], "tokens": ["<s>"]}}}}
            """);
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.File("m"), TokenizerPath = tok }));
        Assert.Equal("TokenizerVocabMismatch", e.ErrorId);
        Assert.Contains("600", e.Message);
    }

    [Fact]
    public void AFolderWithAConfigAndATokenizerButNoWeightsSaysTheWeightsAreMissing()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("config.json"), Llama().ToJsonString());
        File.Copy(SharedData.Tok512, dir.File("tok512.bin"));
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.Path }));
        Assert.NotEqual("PickleNotSupported", e.ErrorId);
        Assert.Contains("safetensors", e.Message);
    }

    [Fact]
    public void AnEmptyTokenizerModelIsNamed()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(dir.File("tokenizer.model"), Array.Empty<byte>());
        var e = Assert.Throws<LoraShellException>(() => TokenizerLoader.Load(dir.File("tokenizer.model")));
        Assert.Equal("InvalidTokenizer", e.ErrorId);
        Assert.Contains("is empty", e.Message);
    }
}
