using System.Text.Json.Nodes;
using LoraShell.Core.Export;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Session;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.Gguf;

/// <summary>
/// GGUF files quantized by llama.cpp itself (its own quantizer, as llama-quantize and Ollama make them)
/// imported by LoraShell: every weight equals what llama.cpp dequantizes it to, bit for bit; the model
/// scores as llama.cpp scores its dequantized weights; and a LoRA trained on it here applies in llama.cpp.
/// </summary>
[Collection(nameof(ReproducibleTrainingCollection))]
public class GgufQuantizedImportTests
{
    // K-quants come in super-blocks of 256, so every matrix row here is a multiple of 256 long.
    static JsonObject Config() => new()
    {
        ["model_type"] = "llama", ["hidden_size"] = 256, ["intermediate_size"] = 512, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 512, ["max_position_embeddings"] = 256,
        ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["tie_word_embeddings"] = false, ["bos_token_id"] = 1, ["eos_token_id"] = 2,
    };

    static string ExportBase(TempFolder dir)
    {
        string folder = dir.File("hf"), gguf = dir.File("base-f32.gguf");
        manual_seed(11);
        using (var model = new CausalLM(ModelConfig.FromJson(Config().ToJsonString(), "tiny llama")))
        {
            using var _ = no_grad();
            foreach (var (name, p) in model.named_parameters())
                if (!name.Contains("norm")) p.copy_(randn_like(p) * (name.Contains("embed") ? 1.0 : 1 / Math.Sqrt(p.shape[1])));
            HuggingFaceWriter.Save(model, folder, overwrite: false);
        }
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = folder, TokenizerPath = SharedData.Tok512 });
        m.SaveGguf(gguf, GgmlType.F32);
        return gguf;
    }

    static readonly long[] Ids = Enumerable.Range(0, 24).Select(i => (long)((i * 53 + 7) % 512)).ToArray();

    [Theory]
    [InlineData("Q8_0", new[] { GgmlType.Q8_0 })]
    [InlineData("Q6_K", new[] { GgmlType.Q6_K })]
    [InlineData("Q4_K_M", new[] { GgmlType.Q4_K, GgmlType.Q6_K })]
    [InlineData("Q5_K_M", new[] { GgmlType.Q5_K, GgmlType.Q6_K })]
    [InlineData("Q4_0", new[] { GgmlType.Q4_0 })]
    public void AFileLlamaCppQuantizedLoadsIntoTheWeightsLlamaCppDequantizesItTo(string type, GgmlType[] expectTypes)
    {
        using var dir = new TempFolder();
        string f32 = ExportBase(dir), quantized = dir.File($"{type}.gguf"), dequantized = dir.File($"{type}-f32.gguf");
        LlamaCpp.Quantize(f32, quantized, type);
        LlamaCpp.Quantize(quantized, dequantized, "F32"); // llama.cpp's own dequantization of the same file
        using (var f = GgufFile.Open(quantized))
            foreach (var t in expectTypes) Assert.Contains(f.Tensors, x => x.Type == t);

        using var ours = LoadedModel.Load(new ModelLoadOptions { Path = quantized });
        using var theirs = LoadedModel.Load(new ModelLoadOptions { Path = dequantized });
        var a = ours.Model.state_dict();
        var b = theirs.Model.state_dict();
        Assert.Equal(b.Keys.OrderBy(k => k), a.Keys.OrderBy(k => k));
        foreach (var key in a.Keys) TensorAssert.Identical(b[key], a[key], $"{type}: {key}");

        using var logits = GgufLlamaCppTests.Logits(ours, Ids);
        double onDequantized = GgufLlamaCppTests.RelativeError(LlamaCpp.Logits(dequantized, Ids), logits);
        Assert.True(onDequantized < 1e-4, $"{type}: llama.cpp on its dequantized weights vs LoraShell on the quantized file: {onDequantized:E2}");
        // On the quantized file itself llama.cpp also rounds the activations it multiplies with (to Q8_0 or
        // Q8_K blocks), which no dequantizing reader reproduces; the gap is reported, bounded loosely.
        double onQuantized = GgufLlamaCppTests.RelativeError(LlamaCpp.Logits(quantized, Ids), logits);
        Assert.True(onQuantized < 0.1, $"{type}: llama.cpp on the quantized file vs LoraShell: {onQuantized:E2}");

        // Straight into NF4 as the file is read: the same model within NF4's rounding.
        using var nf4 = LoadedModel.Load(new ModelLoadOptions { Path = quantized, Quantization = BaseQuantization.Nf4 });
        Assert.True(nf4.Model.QuantizedProjections().Any());
        Assert.True(GgufLlamaCppTests.RelativeError(LlamaCpp.Logits(dequantized, Ids), GgufLlamaCppTests.Logits(nf4, Ids)) < 0.2);
    }

    [Fact]
    public void ALoraTrainedOnAQ4KMFileAppliesInLlamaCppAsLoraShellPredicts()
    {
        using var dir = new TempFolder();
        string f32 = ExportBase(dir), quantized = dir.File("q4km.gguf"), dequantized = dir.File("q4km-f32.gguf"), adapter = dir.File("adapter.gguf");
        LlamaCpp.Quantize(f32, quantized, "Q4_K_M");
        LlamaCpp.Quantize(quantized, dequantized, "F32");
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = quantized });
        m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetRegex = TargetMatcher.AllLinear }, seed: 5);
        var result = Trainer.Run(m, new TrainingOptions
        {
            DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 12, BatchSize = 4, SequenceLength = 64,
            LearningRate = 1e-2, MaxEvalWindows = 16, Seed = 3,
        });
        Assert.True(result.FinalValidationLoss < result.InitialValidationLoss - 0.05, $"validation loss {result.InitialValidationLoss} -> {result.FinalValidationLoss}");

        GgufAdapterExport.Save(m.Adapters, "default", adapter);
        using var predicted = GgufLlamaCppTests.Logits(m, Ids);
        var withAdapter = LlamaCpp.Logits(dequantized, Ids, (adapter, 1.0));
        var without = LlamaCpp.Logits(dequantized, Ids);
        Assert.True(GgufLlamaCppTests.RelativeError(withAdapter, predicted) < 1e-4, $"llama.cpp with the trained adapter vs LoraShell: {GgufLlamaCppTests.RelativeError(withAdapter, predicted):E2}");
        Assert.True(GgufLlamaCppTests.RelativeError(without, predicted) > 1e-2, "the trained adapter should change llama.cpp's logits");
    }
}
