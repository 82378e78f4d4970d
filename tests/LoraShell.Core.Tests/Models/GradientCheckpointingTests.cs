using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using Xunit;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// Gradient checkpointing recomputes each layer in backward; the gradients must be those of the run
/// that kept every activation (the same function, the same dropout masks).
/// </summary>
[Collection(nameof(ReproducibleTrainingCollection))]
public class GradientCheckpointingTests
{
    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (var name in new[] { "llama-llama3", "mistral", "qwen3", "phi3", "gpt2" })
        {
            data.Add(name, false); // full fine-tuning: gradients reach the embeddings through every layer
            data.Add(name, true);  // LoRA with dropout: the recomputation must draw the same masks
        }
        return data;
    }

    /// <summary>Gradients of every trainable parameter after one forward and backward (dropout drawn from <paramref name="rng"/>).</summary>
    static Dictionary<string, float[]> Gradients(CausalLM model, Tensor ids, Tensor rng, bool checkpointing)
    {
        using var scope = NewDisposeScope();
        foreach (var p in model.parameters()) p.grad = null;
        set_rng_state(rng);
        model.Decoder.GradientCheckpointing = checkpointing;
        try
        {
            var logits = model.forward(ids);
            var loss = nn.functional.cross_entropy(logits[.., ..^1].reshape(-1, logits.shape[^1]), ids[.., 1..].reshape(-1));
            loss.backward();
        }
        finally { model.Decoder.GradientCheckpointing = false; }
        return model.named_parameters().Where(p => p.parameter.requires_grad)
            .ToDictionary(p => p.name, p => p.parameter.grad?.data<float>().ToArray() ?? Array.Empty<float>());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Checkpointed_gradients_equal_the_ordinary_ones(string family, bool lora)
    {
        var c = TinyFamilies.All.Single(x => x.Name == family);
        using var model = TinyFamilies.Create(c);
        using var loaded = new LoadedModel(model, null, family, "test");
        if (lora)
        {
            loaded.Adapters.Add("default", TinyFamilies.Adapter(model) with { LoraDropout = 0.3 }, seed: 3);
            foreach (var p in model.parameters()) p.requires_grad = false;
            foreach (var (name, p) in model.named_parameters()) if (name.Contains("lora_")) p.requires_grad = true;
        }
        model.train();
        using var ids = TinyFamilies.IdTensor();
        using var rng = get_rng_state();
        var plain = Gradients(model, ids, rng, checkpointing: false);
        var recomputed = Gradients(model, ids, rng, checkpointing: true);

        Assert.NotEmpty(plain);
        foreach (var (name, g) in plain)
        {
            Assert.True(g.Length > 0, $"{name} got no gradient");
            Assert.True(g.Any(v => v != 0), $"{name}: gradient is all zero");
            TensorAssert.Close(g, recomputed[name], 1e-6, $"{family} {(lora ? "LoRA" : "full")} {name}");
        }
        if (!lora) return;
        // Dropout makes the gradient depend on the masks drawn; another draw must give another gradient,
        // or the equality above would hold whatever masks the recomputation used.
        using var other = randn(3); // advances the generator
        using var rng2 = get_rng_state();
        var otherMasks = Gradients(model, ids, rng2, checkpointing: true);
        Assert.Contains(plain, p => !p.Value.SequenceEqual(otherMasks[p.Key]));
    }

    static TrainingOptions ThreeSteps(TrainingMethod method) => new()
    {
        Method = method, DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 3, BatchSize = 4, SequenceLength = 64,
        LearningRate = 5e-3, MaxEvalWindows = 4, Seed = 11, Ladder = new LadderConfig { ReductionFactor = 4 },
    };

    [Theory]
    [InlineData(TrainingMethod.Lora)]
    [InlineData(TrainingMethod.Full)]
    [InlineData(TrainingMethod.Ladder)]
    public void Training_with_checkpointing_repeats_the_loss_curve_and_weights(TrainingMethod method)
    {
        (TrainingResult Result, float[] Weights) Train(bool checkpointing)
        {
            using var m = SharedData.LoadStories();
            if (method == TrainingMethod.Lora)
                m.Adapters.Add("default", new LoraConfig { R = 8, LoraAlpha = 16, LoraDropout = 0.1, TargetRegex = TargetMatcher.AllLinear }, seed: 1);
            var r = Trainer.Run(m, ThreeSteps(method) with { GradientCheckpointing = checkpointing });
            Assert.False(m.Model.Decoder.GradientCheckpointing); // switched off again after training
            // What the method trained: the adapter, every weight, or (Ladder) the backbone's output through the side network.
            float[] weights = method switch
            {
                TrainingMethod.Ladder => m.Perplexity(File.ReadAllText(SharedData.TinyShakespeare)[..2000]).Loss is var l ? new[] { (float)l } : Array.Empty<float>(),
                _ => m.Model.named_parameters().Where(p => method == TrainingMethod.Full || p.name.Contains("lora_"))
                    .SelectMany(p => p.parameter.data<float>().ToArray()).ToArray(),
            };
            return (r, weights);
        }
        var plain = Train(false);
        var recomputed = Train(true);
        TensorAssert.Close(plain.Result.Losses.Select(x => (float)x).ToArray(), recomputed.Result.Losses.Select(x => (float)x).ToArray(), 1e-5, "losses");
        TensorAssert.Close(plain.Weights, recomputed.Weights, 1e-5, "trained weights");
    }

    [Fact]
    public void Classification_with_checkpointing_repeats_the_loss_curve()
    {
        using var dir = new TempFolder();
        string data = dir.File("words.tsv");
        File.WriteAllLines(data, new[] { "sentence\tlabel" }.Concat(Enumerable.Range(0, 64).Select(i => $"Tom was very {(i % 3 == 0 ? "happy" : "sad")} at the park number {i} .\t{(i % 3 == 0 ? "pos" : "neg")}")));
        double[] Losses(bool checkpointing)
        {
            using var m = SharedData.LoadStories();
            m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = new[] { "q_proj", "v_proj" } }, seed: 2);
            return Trainer.Run(m, new TrainingOptions
            {
                DataPaths = new[] { data }, MaxSteps = 3, BatchSize = 8, SequenceLength = 32, LearningRate = 5e-3, Seed = 4, GradientCheckpointing = checkpointing,
            }).Losses.ToArray();
        }
        TensorAssert.Close(Losses(false).Select(x => (float)x).ToArray(), Losses(true).Select(x => (float)x).ToArray(), 1e-5, "classification losses");
    }
}
