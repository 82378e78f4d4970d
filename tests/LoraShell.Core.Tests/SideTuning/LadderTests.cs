using System.Text.Json.Nodes;
using LoraShell.Core.Inference;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

public class LadderTests
{
    static readonly Tensor Ids = tensor(new long[] { 1, 403, 407, 261, 378, 290, 77, 300, 301, 45 }).unsqueeze(0);

    [Theory]
    [InlineData(LadderInit.Magnitude)]
    [InlineData(LadderInit.Random)]
    public void AtStepZeroTheLadderModelIsTheBackbone(LadderInit init)
    {
        using var m = SharedData.LoadStories();
        using var side = new LadderSideNetwork(new LadderConfig { ReductionFactor = 4, Init = init }, m.Model.Config);
        if (init == LadderInit.Magnitude) side.InitFromBackbone(m.Model);
        using var _ = no_grad();
        var backbone = m.Model.forward(Ids);
        var ladder = side.Forward(m.Model, Ids);
        Assert.True(TensorAssert.MaxAbsDiff(backbone, ladder) < 1e-6);
        Assert.All(side.GateValues(), g => Assert.Equal(0.5, g, 9));
        Assert.Equal(16, side.SideConfig.HiddenSize);
        Assert.Equal(2, side.SideConfig.NumAttentionHeads);
    }

    [Fact]
    public void BackpropagationNeverEntersTheBackbone()
    {
        using var m = SharedData.LoadStories();
        using var side = new LadderSideNetwork(new LadderConfig { ReductionFactor = 8 }, m.Model.Config);
        side.InitFromBackbone(m.Model);
        foreach (var p in m.Model.parameters()) p.requires_grad = false;
        // The backbone's hidden states, as the side network sees them, carry no autograd graph.
        var states = new List<Tensor>();
        using (no_grad()) m.Model.Decoder.Forward(Ids, null, (_, h) => states.Add(h));
        Assert.All(states, h => Assert.False(h.requires_grad));

        var logits = side.Forward(m.Model, Ids);
        Assert.True(logits.requires_grad);
        nn.functional.cross_entropy(logits[0, ..^1], Ids[0, 1..]).backward();
        Assert.All(m.Model.parameters(), p => Assert.Null(p.grad));
        Assert.True(side.up.weight!.grad!.abs().sum().item<float>() > 0);
        Assert.True(side.gates.grad is not null);
    }

    [Fact]
    public void LadderTrainingLowersValidationLossAndSavesTheSideNetwork()
    {
        using var dir = new TempFolder();
        using var m = SharedData.LoadStories();
        var r = Trainer.Run(m, new TrainingOptions
        {
            Method = TrainingMethod.Ladder, DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 30, BatchSize = 8, SequenceLength = 64,
            LearningRate = 5e-3, WarmupSteps = 3, MaxEvalWindows = 32, OutputPath = dir.Path, Seed = 5, Ladder = new LadderConfig { ReductionFactor = 4 },
        });
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss - 0.3, $"{r.InitialValidationLoss} -> {r.FinalValidationLoss}");
        Assert.Equal(m.SideNetwork!.parameters().Sum(p => p.numel()), r.TrainableParameters);
        Assert.Equal(5, r.GateValues!.Length);
        Assert.True(File.Exists(Path.Combine(r.SideNetworkPath!, LadderSideNetwork.WeightsFile)));

        using var fresh = SharedData.LoadStories();
        fresh.SideNetwork = LadderSideNetwork.Load(r.SideNetworkPath!, fresh.Model);
        string text = File.ReadAllText(SharedData.TinyShakespeare)[^3000..];
        Assert.Equal(m.Perplexity(text).Loss, fresh.Perplexity(text).Loss, 6);

        // Generation with the side network: its blocks keep their own KV cache, which must give the same
        // tokens as recomputing the whole sequence through backbone and side network at every step.
        var generated = fresh.Generate(new GenerationOptions { Prompt = "ROMEO:", MaxTokens = 24, Temperature = 0, StopAtSpecialTokens = false });
        var ids = generated.PromptTokens.ToList();
        using (TorchSharp.torch.no_grad())
            for (int i = 0; i < 24; i++)
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                var logits = fresh.Logits(TorchSharp.torch.tensor(ids.Select(t => (long)t).ToArray()).unsqueeze(0));
                ids.Add((int)logits[0, -1].argmax().item<long>());
            }
        Assert.Equal(ids.Skip(generated.PromptTokens.Count), generated.GeneratedTokens);
        Assert.NotEqual(generated.GeneratedTokens, SharedData.Stories.Generate(new GenerationOptions { Prompt = "ROMEO:", MaxTokens = 24, Temperature = 0, StopAtSpecialTokens = false }).GeneratedTokens);
    }

    [Fact]
    public void FisherInitPrunesByAnotherImportance()
    {
        using var a = SharedData.LoadStories();
        using var b = SharedData.LoadStories();
        var o = new TrainingOptions { DataPaths = new[] { SharedData.TinyShakespeare }, MaxSteps = 1, BatchSize = 4, SequenceLength = 64, MaxEvalWindows = 2 };
        Trainer.Run(a, o with { Method = TrainingMethod.Ladder, Ladder = new LadderConfig { Init = LadderInit.Magnitude }, LearningRate = 1e-12 });
        Trainer.Run(b, o with { Method = TrainingMethod.Ladder, Ladder = new LadderConfig { Init = LadderInit.Fisher }, LearningRate = 1e-12 });
        var qa = a.SideNetwork!.blocks[2].Attention.Projections.First().Module;
        var qb = b.SideNetwork!.blocks[2].Attention.Projections.First().Module;
        Assert.True(TensorAssert.MaxAbsDiff(((LoraShell.Core.Models.Blocks.LinearProjection)qa).weight!, ((LoraShell.Core.Models.Blocks.LinearProjection)qb).weight!) > 0);
    }

    [Theory]
    [InlineData(3, null, "InvalidReductionFactor")]
    [InlineData(16, null, "InvalidReductionFactor")]
    [InlineData(8, new[] { 1, 7 }, "InvalidSideLayers")]
    [InlineData(8, new[] { 3, 1 }, "InvalidSideLayers")]
    public void BadShapesAreRejected(int k, int[]? layers, string errorId)
    {
        var e = Assert.Throws<LoraShellException>(() => new LadderConfig { ReductionFactor = k, SideLayers = layers }.Validate(SharedData.Stories.Model.Config));
        Assert.Equal(errorId, e.ErrorId);
        if (k == 3) Assert.Contains("valid factors: 1, 2, 4, 8", e.Message);
    }

    [Fact]
    public void SideNetworkForAnotherBackboneIsRefused()
    {
        using var dir = new TempFolder();
        using var side = new LadderSideNetwork(new LadderConfig(), SharedData.Stories.Model.Config);
        side.Save(dir.File("side"), false);
        var json = JsonNode.Parse(File.ReadAllText(dir.File("side/side_network.json")))!;
        json["BackboneHiddenSize"] = 128;
        File.WriteAllText(dir.File("side/side_network.json"), json.ToJsonString());
        var e = Assert.Throws<LoraShellException>(() => LadderSideNetwork.Load(dir.File("side"), SharedData.Stories.Model));
        Assert.Equal("SideNetworkForAnotherBackbone", e.ErrorId);
    }
}
