using System.Text.Json.Nodes;
using LoraShell.Core.IO;
using LoraShell.Core.Inference;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class HuggingFaceFolderTests
{
    static readonly Tensor SampleIds = tensor(new long[] { 1, 403, 407, 261, 378, 290, 1010 % 512, 77, 300, 301 }).unsqueeze(0);

    static Tensor Logits(CausalLM model)
    {
        using var _ = no_grad();
        return model.forward(SampleIds.to(model.Device)).to(ScalarType.Float32).cpu();
    }

    [Fact]
    public void ExportedFolderReimportsWithIdenticalLogits()
    {
        using var dir = new TempFolder();
        string folder = Path.Combine(dir.Path, "hf");
        var info = SharedData.Stories.SaveHuggingFace(folder, overwrite: false);
        Assert.True(File.Exists(Path.Combine(folder, "config.json")));
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(folder, "tok512.bin")));
        Assert.Empty(Directory.GetDirectories(dir.Path, ".*")); // no temp folder left behind

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!;
        Assert.Equal("llama", (string?)config["model_type"]);
        Assert.Equal(64, (int)config["hidden_size"]!);
        Assert.True((bool)config["tie_word_embeddings"]!);

        using var st = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.DoesNotContain("lm_head.weight", st.Names);
        Assert.Equal(new long[] { 64, 64 }, st["model.layers.0.self_attn.q_proj.weight"].Shape);

        using var back = LoadedModel.Load(new ModelLoadOptions { Path = folder });
        Assert.Equal("huggingface", back.Format);
        TensorAssert.Identical(Logits(SharedData.Stories.Model), Logits(back.Model));
        foreach (var (name, p) in SharedData.Stories.Model.state_dict())
            TensorAssert.Identical(p, back.Model.state_dict()[name], name);
    }

    [Fact]
    public void ExistingOutputFolderNeedsOverwrite()
    {
        using var dir = new TempFolder();
        var e = Assert.Throws<LoraShellException>(() => SharedData.Stories.SaveHuggingFace(dir.Path, overwrite: false));
        Assert.Equal("OutputPathExists", e.ErrorId);
    }

    [Fact]
    public void Bfloat16FolderLoadsWithinBf16Tolerance()
    {
        using var dir = new TempFolder();
        string folder = Path.Combine(dir.Path, "bf16");
        using (var copy = SharedData.LoadStories(ModelDType.BFloat16))
            copy.SaveHuggingFace(folder, overwrite: false);
        Assert.Equal("bfloat16", (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!["torch_dtype"]);
        using (var st = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors")))
            Assert.All(st.Entries, e => Assert.Equal("BF16", e.DType));

        var reference = Logits(SharedData.Stories.Model);
        double scale = reference.abs().max().item<float>();
        using var upcast = LoadedModel.Load(new ModelLoadOptions { Path = folder });
        Assert.Equal(ScalarType.Float32, upcast.Model.DType);
        double upcastError = TensorAssert.MaxAbsDiff(reference, Logits(upcast.Model)) / scale;
        Assert.True(upcastError < 0.03, $"bf16 weights, fp32 compute: relative error {upcastError}");

        using var native = LoadedModel.Load(new ModelLoadOptions { Path = folder, DType = ModelDType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, native.Model.DType);
        double nativeError = TensorAssert.MaxAbsDiff(reference, Logits(native.Model)) / scale;
        Assert.True(nativeError < 0.06, $"bf16 compute: relative error {nativeError}");
        Assert.True(upcastError > 0, "bf16 rounding should change the logits a little");
    }

    [Fact]
    public void ShardedFolderLoadsTheSameWeights()
    {
        using var dir = new TempFolder();
        var all = SharedData.Stories.Model.state_dict().OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
        var first = all.Where(p => !p.Key.StartsWith("model.layers.3") && !p.Key.StartsWith("model.layers.4")).ToList();
        var second = all.Except(first).ToList();
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), first);
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), second);
        var map = new JsonObject();
        foreach (var (k, _) in first) map[k] = "model-00001-of-00002.safetensors";
        foreach (var (k, _) in second) map[k] = "model-00002-of-00002.safetensors";
        File.WriteAllText(dir.File("model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        File.WriteAllText(dir.File("config.json"), SharedData.Stories.Model.Config.ToJson("float32"));

        using var sharded = LoadedModel.Load(new ModelLoadOptions { Path = dir.Path, TokenizerPath = SharedData.Tok512 });
        TensorAssert.Identical(Logits(SharedData.Stories.Model), Logits(sharded.Model));

        // A stale copy of a tensor in the other shard: the index would pick one without a word. Identical
        // copies are fine; a different one is refused.
        var stale = second.Select(p => KeyValuePair.Create(p.Key, p.Value)).Append(KeyValuePair.Create("model.norm.weight", all.Single(p => p.Key == "model.norm.weight").Value)).OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), stale);
        using (var identical = LoadedModel.Load(new ModelLoadOptions { Path = dir.Path, TokenizerPath = SharedData.Tok512 })) { }
        stale = stale.Select(p => p.Key == "model.norm.weight" ? KeyValuePair.Create(p.Key, p.Value * 2) : p).ToList();
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), stale);
        var conflict = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.Path }));
        Assert.Equal("ConflictingTensorCopies", conflict.ErrorId);
        Assert.Contains("model.norm.weight", conflict.Message);
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), second);

        // An index that names a shard which is not there.
        map["model.norm.weight"] = "model-00003-of-00002.safetensors";
        File.WriteAllText(dir.File("model.safetensors.index.json"), new JsonObject { ["weight_map"] = JsonNode.Parse(map.ToJsonString()) }.ToJsonString());
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.Path }));
        Assert.Equal("ShardNotFound", e.ErrorId);
    }

    static string ExportStories(TempFolder dir)
    {
        string folder = Path.Combine(dir.Path, "hf");
        SharedData.Stories.SaveHuggingFace(folder, overwrite: false);
        return folder;
    }

    [Fact]
    public void MissingConfigKeysAreAllNamed()
    {
        using var dir = new TempFolder();
        string folder = ExportStories(dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        config.Remove("hidden_size");
        config.Remove("vocab_size");
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = folder }));
        Assert.Equal("ModelConfigMissingKeys", e.ErrorId);
        Assert.Contains("hidden_size, vocab_size", e.Message);
    }

    [Fact]
    public void FolderWithoutConfigIsRejected()
    {
        using var dir = new TempFolder();
        string folder = ExportStories(dir);
        File.Delete(Path.Combine(folder, "config.json"));
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = folder }));
        Assert.Equal("ModelConfigNotFound", e.ErrorId);
        Assert.Contains("model.safetensors", e.Message); // lists what the folder has
    }

    [Fact]
    public void ConfigThatDisagreesWithWeightsNamesTheMismatch()
    {
        using var dir = new TempFolder();
        string folder = ExportStories(dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        config["num_hidden_layers"] = 6;
        config["intermediate_size"] = 128;
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = folder }));
        Assert.Equal("WeightsDoNotMatchModel", e.ErrorId);
        Assert.Contains("model.layers.5.", e.Message);
        Assert.Contains("wrong shape", e.Message);
    }

    [Fact]
    public void PickleOnlyFolderIsRefused()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("config.json"), SharedData.Stories.Model.Config.ToJson("float32"));
        File.WriteAllBytes(dir.File("pytorch_model.bin"), new byte[] { 0x80, 0x02 });
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = dir.Path }));
        Assert.Equal("PickleNotSupported", e.ErrorId);
    }

    [Fact]
    public void TokenizerWithAnotherVocabularyIsRejected()
    {
        using var dir = new TempFolder();
        // Keep the header and the first 300 tokens of tok512.bin.
        var bytes = File.ReadAllBytes(SharedData.Tok512);
        int at = 4;
        for (int i = 0; i < 300; i++) at += 8 + BitConverter.ToInt32(bytes, at + 4);
        File.WriteAllBytes(dir.File("tok300.bin"), bytes[..at]);
        var e = Assert.Throws<LoraShellException>(() => LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = dir.File("tok300.bin") }));
        Assert.Equal("TokenizerVocabMismatch", e.ErrorId);
        Assert.Contains("300 tokens", e.Message);
        Assert.Contains("vocab_size 512", e.Message);
    }

    [Theory]
    [InlineData("cuda:x", "InvalidDevice")]
    [InlineData("tpu", "InvalidDevice")]
    public void BadDeviceIsRejected(string device, string id)
    {
        var e = Assert.Throws<LoraShellException>(() => DeviceSpec.ParseDevice(device));
        Assert.Equal(id, e.ErrorId);
    }

    [Fact]
    public void CudaRequestWithoutCudaSaysSo()
    {
        if (cuda.is_available()) return; // only meaningful on a CPU-only build
        var e = Assert.Throws<LoraShellException>(() => DeviceSpec.ParseDevice("cuda"));
        Assert.Equal("CudaNotAvailable", e.ErrorId);
        Assert.Equal(LoraErrorKind.ResourceUnavailable, e.Kind);
    }

    [SkippableCudaFact]
    public void CudaModelMatchesCpu()
    {
        using var gpu = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Device = "cuda" });
        Assert.True(TensorAssert.MaxAbsDiff(Logits(SharedData.Stories.Model), Logits(gpu.Model)) < 1e-3);
        var text = gpu.Generate(new GenerationOptions { MaxTokens = 200, Temperature = 0 }).Text;
        Assert.Equal(File.ReadAllText(SharedData.Greedy200), text + "\n");
    }
}

/// <summary>A fact that runs only where CUDA is available.</summary>
public sealed class SkippableCudaFactAttribute : FactAttribute
{
    public SkippableCudaFactAttribute()
    {
        if (!cuda.is_available()) Skip = "CUDA is not available in this build/process.";
    }
}
