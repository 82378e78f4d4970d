using LoraShell.Core.Inference;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Session;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests.Families;

/// <summary>The rest of the toolkit on every family: training by each method, merge and export, cached decoding.</summary>
public class FamilyToolkitTests
{
    public static IEnumerable<object[]> Cases => TinyFamilies.All.Select(c => new object[] { c.Name });

    static LoadedModel Load(string folder) => LoadedModel.Load(new ModelLoadOptions { Path = folder, TokenizerPath = SharedData.Tok512 });

    static string Write(TinyFamilies.Case c, TempFolder dir)
    {
        string folder = dir.File("model");
        using var model = TinyFamilies.Create(c);
        HuggingFaceWriter.Save(model, folder, overwrite: false);
        return folder;
    }

    static TrainingOptions Options(TempFolder dir, TrainingMethod method, string output)
    {
        string data = dir.File("shakespeare.txt");
        if (!File.Exists(data)) File.WriteAllText(data, File.ReadAllText(SharedData.TinyShakespeare)[..20_000]);
        return new()
        {
            Method = method, DataPaths = new[] { data }, MaxSteps = 16, BatchSize = 4, SequenceLength = 12,
            LearningRate = 3e-2, MaxEvalWindows = 8, OutputPath = dir.File(output), Seed = 5,
            Ladder = new LadderConfig { ReductionFactor = 2 },
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryMethodTrainsMergesAndExports(string name)
    {
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var dir = new TempFolder();
        string folder = Write(c, dir);

        using (var full = Load(folder))
        {
            var r = Trainer.Run(full, Options(dir, TrainingMethod.Full, "full"));
            Assert.True(r.FinalValidationLoss < r.InitialValidationLoss, $"{name} full: {r.InitialValidationLoss} -> {r.FinalValidationLoss}");
            using var back = Load(r.ModelPath!);
            Assert.Equal(c.Config["model_type"]!.ToString(), back.Model.Config.ModelType);
        }

        using (var ladder = Load(folder))
        {
            var r = Trainer.Run(ladder, Options(dir, TrainingMethod.Ladder, "ladder"));
            Assert.True(r.FinalValidationLoss < r.InitialValidationLoss, $"{name} ladder: {r.InitialValidationLoss} -> {r.FinalValidationLoss}");
            Assert.Equal(name == "gpt2" ? typeof(TorchSharp.Modules.LayerNorm) : typeof(Models.Blocks.RmsNorm), ladder.SideNetwork!.norm.GetType());
            using var reloaded = Load(folder);
            reloaded.SideNetwork = LadderSideNetwork.Load(r.SideNetworkPath!, reloaded.Model);
            Assert.Equal(ladder.Perplexity("To be, or not to be").Loss, reloaded.Perplexity("To be, or not to be").Loss, 5);
        }

        using var m = Load(folder);
        m.Adapters.Add("default", new LoraConfig { R = 4, LoraAlpha = 8, TargetRegex = TargetMatcher.AllLinear }, seed: 1);
        var lora = Trainer.Run(m, Options(dir, TrainingMethod.Lora, "lora"));
        Assert.True(lora.FinalValidationLoss < lora.InitialValidationLoss, $"{name} lora: {lora.InitialValidationLoss} -> {lora.FinalValidationLoss}");
        double adapted = m.Perplexity("To be, or not to be").Loss;
        var parity = MergeParityCheck.Merge(m.Adapters, new[] { "default" });
        Assert.True(parity.Relative < 1e-5, $"{name} merge parity {parity.Relative:E2}");
        var exported = m.SaveHuggingFace(dir.File("merged"), overwrite: false);
        using var merged = Load(exported.FullName);
        Assert.Equal(adapted, merged.Perplexity("To be, or not to be").Loss, 3); // float32 merge: ~1e-5 relative
        m.Adapters.Unmerge();
        Assert.Equal(adapted, m.Perplexity("To be, or not to be").Loss, 4);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void CachedDecodingMatchesFullRecomputation(string name)
    {
        // Dynamic NTK scaling recomputes frequencies from the length of each call, in transformers as here,
        // so its cached positions legitimately differ from a single long forward.
        if (name == "llama-dynamic") return;
        var c = TinyFamilies.All.Single(x => x.Name == name);
        using var model = TinyFamilies.Create(c);
        using var _ = no_grad();
        var ids = TinyFamilies.IdTensor().narrow(0, 0, 1);
        var full = model.forward(ids);
        using var cache = model.NewCache();
        var pieces = new List<Tensor> { model.Forward(ids.narrow(1, 0, 5), cache) };
        for (int t = 5; t < TinyFamilies.Sequence; t++) pieces.Add(model.Forward(ids.narrow(1, t, 1), cache));
        var incremental = cat(pieces.ToArray(), 1);
        Assert.True(TensorAssert.MaxAbsDiff(full, incremental) / full.abs().max().item<float>() < 1e-5, name);
    }

    [Fact]
    public void MistralsWindowHoldsDuringGeneration()
    {
        var c = TinyFamilies.All.Single(x => x.Name == "mistral");
        using var dir = new TempFolder();
        using var m = Load(Write(c, dir));
        var options = new GenerationOptions { Prompt = "ROMEO: shall I", MaxTokens = 20, Temperature = 0, StopAtSpecialTokens = false };
        var generated = m.Generate(options);
        // Greedy decoding with the cache must pick the argmax of a full, windowed forward at every step.
        var all = generated.PromptTokens.Concat(generated.GeneratedTokens).Select(i => (long)i).ToArray();
        using var _ = no_grad();
        var logits = m.Model.forward(tensor(all).unsqueeze(0));
        for (int i = 0; i < generated.GeneratedTokens.Count; i++)
            Assert.Equal(generated.GeneratedTokens[i], (int)logits[0, generated.PromptTokens.Count - 1 + i].argmax().item<long>());
    }
}
