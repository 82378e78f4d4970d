using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Session;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// NF4 and int8 bases against references computed here from the definitions, element by element (no
/// tensor code shared with the implementation), then models built on them.
/// </summary>
[Collection(nameof(ReproducibleTrainingCollection))]
public class QuantizationTests
{
    /// <summary>bitsandbytes' NF4, from its definition: blocks of 64 of the row-major matrix, w · (1/absmax) to the nearest code (ties low), code · absmax.</summary>
    static float[] ReferenceNf4(float[] w)
    {
        var result = new float[w.Length];
        for (int start = 0; start < w.Length; start += 64)
        {
            int end = Math.Min(start + 64, w.Length);
            float absmax = 0;
            for (int i = start; i < end; i++) absmax = Math.Max(absmax, Math.Abs(w[i]));
            float reciprocal = absmax == 0 ? 0 : 1f / absmax;
            for (int i = start; i < end; i++)
            {
                float x = w[i] * reciprocal;
                int best = 0;
                for (int c = 1; c < 16; c++)
                    if (Math.Abs(x - Codebooks.Nf4[c]) < Math.Abs(x - Codebooks.Nf4[best])) best = c;
                result[i] = Codebooks.Nf4[best] * absmax;
            }
        }
        return result;
    }

    /// <summary>Row-wise int8 from its definition: scale = absmax / 127, q = round-half-even(w / scale), q · scale.</summary>
    static float[] ReferenceInt8(float[] w, int rows, int columns)
    {
        var result = new float[w.Length];
        for (int r = 0; r < rows; r++)
        {
            float absmax = 0;
            for (int c = 0; c < columns; c++) absmax = Math.Max(absmax, Math.Abs(w[r * columns + c]));
            float scale = absmax / 127f;
            for (int c = 0; c < columns; c++)
            {
                float q = scale == 0 ? 0 : MathF.Round(w[r * columns + c] / scale, MidpointRounding.ToEven);
                result[r * columns + c] = q * scale;
            }
        }
        return result;
    }

    static Tensor Matrix(int rows, int columns, int seed)
    {
        manual_seed(seed);
        var w = randn(rows, columns) * 0.05;
        w[3, 7] = tensor(0.9f); // an outlier, so some blocks have a large absmax
        w[5] = zeros(columns);  // a zero row: a zero absmax and a zero scale
        return w;
    }

    [Fact]
    public void Nf4_equals_the_definition_bit_for_bit_including_a_padded_last_block()
    {
        using var w = Matrix(37, 50, 1); // 1,850 weights: 28 full blocks and one of 58
        using var q = Nf4Weight.Quantize(w, doubleQuant: false);
        using var back = q.Dequantize(ScalarType.Float32);
        Assert.Equal(new long[] { 37, 50 }, back.shape);
        Assert.Equal(ReferenceNf4(w.data<float>().ToArray()), back.data<float>().ToArray());
        Assert.Equal(29 * 32 + 4 * 29, q.Bytes); // two codes per byte (the last block padded), one float32 absmax per block
    }

    [Fact]
    public void Int8_equals_the_definition_bit_for_bit()
    {
        using var w = Matrix(24, 40, 2);
        using var q = Int8Weight.Quantize(w);
        using var back = q.Dequantize(ScalarType.Float32);
        Assert.Equal(ReferenceInt8(w.data<float>().ToArray(), 24, 40), back.data<float>().ToArray());
        Assert.Equal(24 * 40 + 4 * 24, q.Bytes);
    }

    [Theory]
    [InlineData(BaseQuantization.Nf4, false, 96, 40)]    // 3,840 weights: 60 whole blocks
    [InlineData(BaseQuantization.Nf4, false, 7, 13)]     // 91 weights: a padded last block
    [InlineData(BaseQuantization.Nf4, true, 300, 130)]   // 610 blocks: three statistics blocks, the last partial
    [InlineData(BaseQuantization.Int8, false, 33, 17)]
    public void Each_weight_type_states_the_bytes_it_holds(BaseQuantization kind, bool doubleQuant, long outFeatures, long inFeatures)
    {
        // Measure-LoraMemory takes a quantized base's bytes from the type's own statement (QuantizedWeight.CostOf).
        using var w = randn(outFeatures, inFeatures);
        using var q = QuantizedWeight.Quantize(w, kind, doubleQuant);
        Assert.Equal(q.Bytes, QuantizedWeight.CostOf(kind)!.StoredBytes(outFeatures, inFeatures, doubleQuant));
        Assert.Null(QuantizedWeight.CostOf(BaseQuantization.None));
    }

    [Fact]
    public void The_dynamic_map_is_bitsandbytes_signed_8_bit_map()
    {
        var map = Codebooks.Dynamic8Bit();
        Assert.Equal(256, map.Length);
        for (int i = 1; i < map.Length; i++) Assert.True(map[i] > map[i - 1], $"not increasing at {i}");
        Assert.Contains(0f, map);
        Assert.Equal(1f, map[^1]);
        Assert.Equal(-0.99296875f, map[0], 6);            // -(mean of the last two of 65 points over [0.1, 1])
        Assert.Equal(5.5e-7f, map.Where(v => v > 0).Min(), 12); // 1e-6 · (0.1 + 1) / 2
    }

    [Fact]
    public void Double_quantization_keeps_the_statistics_within_the_8_bit_error()
    {
        using var w = Matrix(64, 320, 3); // 320 blocks: two statistics blocks of 256 (the second padded)
        using var plain = Nf4Weight.Quantize(w, doubleQuant: false);
        using var compressed = Nf4Weight.Quantize(w, doubleQuant: true);
        Assert.True(compressed.DoubleQuantized);
        using var a = plain.Absmax();
        using var b = compressed.Absmax();
        // The reference: absmax - mean, scaled by each 256-block's absmax, to the nearest map value, and back.
        var exact = a.data<float>().ToArray();
        float offset = a.mean().item<float>();
        var map = Codebooks.Dynamic8Bit();
        var expected = new float[exact.Length];
        for (int start = 0; start < exact.Length; start += 256)
        {
            int end = Math.Min(start + 256, exact.Length);
            float scale = 0;
            for (int i = start; i < end; i++) scale = Math.Max(scale, Math.Abs(exact[i] - offset));
            for (int i = start; i < end; i++)
            {
                float x = (exact[i] - offset) * (1f / scale);
                float nearest = map.OrderBy(v => Math.Abs(v - x)).First();
                expected[i] = nearest * scale + offset;
            }
        }
        TensorAssert.Close(expected, b.data<float>().ToArray(), 1e-6, "double-quantized absmax");
        Assert.True(compressed.Bytes < plain.Bytes - 3 * 320 + 16, $"{compressed.Bytes} vs {plain.Bytes}"); // 1 byte per block instead of 4
    }

    public static TheoryData<string, BaseQuantization> FamilyCases() => new()
    {
        { "llama-llama3", BaseQuantization.Nf4 }, { "gpt2", BaseQuantization.Nf4 }, { "phi3", BaseQuantization.Nf4 },
        { "qwen2", BaseQuantization.Int8 }, { "gpt2", BaseQuantization.Int8 },
    };

    [Theory]
    [MemberData(nameof(FamilyCases))]
    public void A_quantized_model_computes_the_logits_of_its_dequantized_weights(string family, BaseQuantization kind)
    {
        using var dir = new TempFolder();
        var c = TinyFamilies.All.Single(x => x.Name == family);
        using (var source = TinyFamilies.Create(c)) HuggingFaceWriter.Save(source, dir.Path, overwrite: true);
        using var quantized = HuggingFaceLoader.Load(dir.Path, new WeightFormat { Quantization = kind });
        using var reference = HuggingFaceLoader.Load(dir.Path);
        // The reference model: every projection weight replaced by the definition's dequantized values.
        foreach (var slot in reference.LinearSlots())
        {
            var p = (Projection)slot.Module;
            var w = p.DenseWeight();
            var values = kind == BaseQuantization.Nf4 ? ReferenceNf4(w.data<float>().ToArray()) : ReferenceInt8(w.data<float>().ToArray(), (int)w.shape[0], (int)w.shape[1]);
            p.SetDenseWeight(tensor(values, w.shape));
            Assert.IsType<QuantizedProjection>(quantized.Module(slot.Path));
        }
        using var ids = TinyFamilies.IdTensor();
        using var _ = no_grad();
        using var expected = reference.forward(ids);
        using var actual = quantized.forward(ids);
        Assert.True(TensorAssert.MaxAbsDiff(expected, actual) < 1e-5, $"{family} {kind}: max diff {TensorAssert.MaxAbsDiff(expected, actual):E2}");
        using var dense = HuggingFaceLoader.Load(dir.Path);
        using var original = dense.forward(ids);
        Assert.True(TensorAssert.MaxAbsDiff(original, actual) > 1e-4, "quantization changed nothing: the test would pass without it");
    }

    [Theory]
    [InlineData(BaseQuantization.Nf4)]
    [InlineData(BaseQuantization.Int8)]
    public void On_stories260K_quantization_moves_the_loss_a_little(BaseQuantization kind)
    {
        string text = File.ReadAllText(SharedData.TinyShakespeare)[..6000];
        double baseLoss = SharedData.Stories.Perplexity(text).Loss;
        using var quantized = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = kind });
        double loss = quantized.Perplexity(text).Loss;
        double shift = Math.Abs(loss - baseLoss);
        // A 260K model has 64-wide rows: its weights are coarse for 4 bits. Not zero, not large.
        double most = kind == BaseQuantization.Nf4 ? 0.25 : 0.02;
        Assert.True(shift > 1e-5 && shift < most, $"{kind}: loss {baseLoss:F5} -> {loss:F5}");
    }

    [Fact]
    public void Lora_gradients_through_a_quantized_base_equal_those_through_its_dequantized_weights()
    {
        using var dir = new TempFolder();
        var c = TinyFamilies.All.Single(x => x.Name == "qwen3");
        using (var source = TinyFamilies.Create(c)) HuggingFaceWriter.Save(source, dir.Path, overwrite: true);
        using var quantized = new LoadedModel(HuggingFaceLoader.Load(dir.Path, new WeightFormat { Quantization = BaseQuantization.Nf4 }), null, "q", "test");
        using var reference = new LoadedModel(HuggingFaceLoader.Load(dir.Path), null, "r", "test");
        foreach (var slot in reference.Model.LinearSlots())
            ((Projection)slot.Module).SetDenseWeight(((QuantizedProjection)quantized.Model.Module(slot.Path)).DenseWeight());
        var config = TinyFamilies.Adapter(quantized.Model);
        quantized.Adapters.Add("a", config, seed: 5);
        reference.Adapters.Add("a", config, seed: 5);
        using var ids = TinyFamilies.IdTensor();
        Dictionary<string, float[]> Grads(LoadedModel m)
        {
            foreach (var p in m.Model.parameters()) p.requires_grad = false;
            var lora = m.Model.named_parameters().Where(p => p.name.Contains("lora_")).ToList();
            foreach (var (_, p) in lora) p.requires_grad = true;
            using var scope = NewDisposeScope();
            var logits = m.Model.forward(ids);
            nn.functional.cross_entropy(logits[.., ..^1].reshape(-1, logits.shape[^1]), ids[.., 1..].reshape(-1)).backward();
            return lora.ToDictionary(p => p.name, p => p.parameter.grad!.data<float>().ToArray());
        }
        var expected = Grads(reference);
        var actual = Grads(quantized);
        foreach (var (name, g) in expected) TensorAssert.Close(g, actual[name], 1e-5, name);
    }

    [Fact]
    public void QLoRA_trains_saves_an_ordinary_adapter_and_merges_into_a_float_model()
    {
        using var dir = new TempFolder();
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = BaseQuantization.Nf4, DoubleQuant = true });
        m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, TargetRegex = TargetMatcher.AllLinear }, seed: 1);
        var r = Trainer.Run(m, new TrainingOptions
        {
            DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 20, BatchSize = 8, SequenceLength = 64, LearningRate = 5e-3,
            MaxEvalWindows = 16, OutputPath = dir.File("run"), Seed = 3,
        });
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss - 0.1, $"{r.InitialValidationLoss} -> {r.FinalValidationLoss}");

        // The adapter is a plain PEFT adapter: it loads onto the float model.
        using var dense = SharedData.LoadStories();
        PeftAdapterFormat.Load(dense.Adapters, r.AdapterPath!, "default");
        string text = File.ReadAllText(SharedData.TinyShakespeare)[^3000..];
        double adapted = m.Perplexity(text).Loss;
        Assert.True(Math.Abs(dense.Perplexity(text).Loss - adapted) < 0.25);

        // Merging makes the layers dense (dequantized base + delta): the same outputs, and a float export.
        m.Adapters.Merge(new[] { "default" }, safe: false);
        Assert.All(m.Model.LinearSlots(), s => Assert.False(((QuantizedProjection)ProjectionSlots.BaseOf(s.Module)).IsQuantized));
        Assert.Equal(adapted, m.Perplexity(text).Loss, 4);
        HuggingFaceWriter.Save(m.Model, dir.File("merged"), overwrite: false);
        using var exported = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("merged"), TokenizerPath = SharedData.Tok512 });
        Assert.All(exported.Model.LinearSlots(), s => Assert.IsType<LinearProjection>(s.Module));
        Assert.Equal(adapted, exported.Perplexity(text).Loss, 4);
    }

    [Theory]
    [InlineData("gpt2")]  // Conv1D: the file holds [in, out], the merged weight [out, in]
    [InlineData("qwen2")]
    public void Merging_into_a_quantized_base_exports_in_the_file_layout_and_unmerging_restores_the_codes(string family)
    {
        using var dir = new TempFolder();
        var c = TinyFamilies.All.Single(x => x.Name == family);
        using (var source = TinyFamilies.Create(c)) HuggingFaceWriter.Save(source, dir.Path, overwrite: true);
        using var model = HuggingFaceLoader.Load(dir.Path, new WeightFormat { Quantization = BaseQuantization.Nf4 });
        long bytesBefore = model.WeightBytes;
        using var ids = TinyFamilies.IdTensor();
        using var _ = no_grad();
        using var before = model.forward(ids);
        var adapters = new LoraAdapterSet(model);
        adapters.Add("a", new LoraConfig { R = 4, LoraAlpha = 8, TargetRegex = "all-linear", Init = LoraInit.Random }, seed: 3);
        using var adapted = model.forward(ids);
        adapters.Merge(null, safe: true);
        using var merged = model.forward(ids);
        Assert.True(TensorAssert.MaxAbsDiff(adapted, merged) < 1e-4, $"merged differs from unmerged by {TensorAssert.MaxAbsDiff(adapted, merged):E2}");

        // The export is an ordinary float checkpoint in the family's layout that computes the merged logits.
        using var export = new TempFolder();
        HuggingFaceWriter.Save(model, export.Path, overwrite: true);
        using var reloaded = HuggingFaceLoader.Load(export.Path);
        using var fromFile = reloaded.forward(ids);
        Assert.True(TensorAssert.MaxAbsDiff(merged, fromFile) < 1e-4, $"{family}: exported merged model differs by {TensorAssert.MaxAbsDiff(merged, fromFile):E2}");

        // Unmerging drops the dense weights: the quantized base computes exactly what it did before.
        adapters.Unmerge();
        adapters.Delete("a");
        using var after = model.forward(ids);
        Assert.Equal(0, TensorAssert.MaxAbsDiff(before, after));
        Assert.Equal(bytesBefore, model.WeightBytes);
        Assert.All(model.QuantizedProjections(), q => Assert.True(q.IsQuantized));
    }

    [Fact]
    public void PiSSA_on_a_quantized_base_is_refused_before_anything_changes()
    {
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = BaseQuantization.Nf4 });
        var e = Assert.Throws<LoraShellException>(() => m.Adapters.Add("p", new LoraConfig { R = 4, LoraAlpha = 8, TargetRegex = "all-linear", Init = LoraInit.Pissa }));
        Assert.Equal("PissaOnQuantizedBase", e.ErrorId);
        Assert.Empty(m.Adapters.Names);
        Assert.All(m.Model.QuantizedProjections(), q => Assert.True(q.IsQuantized));
    }

    [Fact]
    public void Full_fine_tuning_of_a_quantized_model_is_refused()
    {
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = BaseQuantization.Int8 });
        var e = Assert.Throws<LoraShellException>(() => Trainer.Run(m, new TrainingOptions { Method = TrainingMethod.Full, DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 1 }));
        Assert.Equal("QuantizedFullFineTune", e.ErrorId);
    }

    [Fact]
    public void Ladder_trains_beside_a_quantized_backbone_and_an_unmerged_export_is_dequantized()
    {
        using var dir = new TempFolder();
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = BaseQuantization.Nf4 });
        var r = Trainer.Run(m, new TrainingOptions
        {
            Method = TrainingMethod.Ladder, DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 10, BatchSize = 8, SequenceLength = 64,
            LearningRate = 5e-3, MaxEvalWindows = 16, Seed = 3, Ladder = new SideTuning.LadderConfig { ReductionFactor = 4 },
        });
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss, $"{r.InitialValidationLoss} -> {r.FinalValidationLoss}");
        using var plain = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K, TokenizerPath = SharedData.Tok512, Quantization = BaseQuantization.Nf4 });
        HuggingFaceWriter.Save(plain.Model, dir.File("export"), overwrite: false);
        using var back = LoadedModel.Load(new ModelLoadOptions { Path = dir.File("export"), TokenizerPath = SharedData.Tok512 });
        string text = File.ReadAllText(SharedData.TinyShakespeare)[..3000];
        Assert.Equal(plain.Perplexity(text).Loss, back.Perplexity(text).Loss, 5);
    }
}
