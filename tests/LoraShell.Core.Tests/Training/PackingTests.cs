using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Session;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Tests.Families;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// Padding-free packing (issue 27): documents that share a training window are each read as if alone — their
/// own positions, attention inside them only — so a token cannot see the document before it. Checked against
/// each document run by itself, in families with rotary, partial-rotary, sliding-window and learned positions,
/// through gradient checkpointing and a ladder side network.
/// </summary>
public class PackingTests
{
    // Two documents in one window of 12: tokens 0..4 and 5..11.
    static readonly long[] First = { 1, 17, 42, 9, 33 }, Second = { 1, 8, 71, 64, 5, 23, 90 }, OtherFirst = { 1, 50, 3, 77, 12 };

    static (Tensor Ids, PackedLayout Packed) Row(long[] first)
    {
        var starts = new bool[12];
        starts[0] = starts[first.Length] = true;
        return (tensor(first.Concat(Second).ToArray()).unsqueeze(0), PackedLayout.FromStarts(starts, 1, 12, CPU));
    }

    static double Relative(Tensor expected, Tensor actual)
        => (expected - actual).abs().max().to(ScalarType.Float64).item<double>() / expected.abs().max().to(ScalarType.Float64).item<double>();

    [Theory]
    [InlineData("llama-linear")]
    [InlineData("mistral")]   // a sliding window of 3
    [InlineData("phi3")]      // partial rotary, sliding window of 5
    [InlineData("qwen3")]
    [InlineData("gpt2")]      // learned positions
    public void EachDocumentInAPackedRowComputesAsIfAlone(string family)
    {
        using var model = TinyFamilies.Create(TinyFamilies.All.Single(c => c.Name == family));
        model.eval();
        using var _ = no_grad();
        var (ids, packed) = Row(First);
        using var packedLogits = model.Forward(ids, packed);
        using var first = model.forward(tensor(First).unsqueeze(0));
        using var second = model.forward(tensor(Second).unsqueeze(0));
        Assert.True(Relative(first, packedLogits[.., ..5]) < 1e-5, $"first document {Relative(first, packedLogits[.., ..5]):E2}");
        Assert.True(Relative(second, packedLogits[.., 5..]) < 1e-5, $"second document {Relative(second, packedLogits[.., 5..]):E2}");

        // Another first document: the second's logits do not move when packed, and do in one stream.
        var (otherIds, otherPacked) = Row(OtherFirst);
        using var otherLogits = model.Forward(otherIds, otherPacked);
        Assert.True((otherLogits[.., 5..] - packedLogits[.., 5..]).abs().max().item<float>() == 0, "packed: the previous document is invisible");
        using var stream = model.forward(ids);
        using var otherStream = model.forward(otherIds);
        Assert.True((otherStream[.., 5..] - stream[.., 5..]).abs().max().item<float>() > 1e-4, "one stream: the previous document is seen");
    }

    [Fact]
    public void CheckpointedLayersAndASideNetworkReadPackedRowsTheSameWay()
    {
        using var model = TinyFamilies.Create(TinyFamilies.All.Single(c => c.Name == "mistral"));
        model.eval();
        var (ids, packed) = Row(First);
        Tensor hidden;
        using (no_grad()) hidden = model.Decoder.Forward(ids, packed: packed);
        model.Decoder.GradientCheckpointing = true;
        using (enable_grad())
        using (var recomputed = model.Decoder.Forward(ids, packed: packed))
            Assert.True(Relative(hidden, recomputed.detach()) < 1e-6, "checkpointed layers see the packed mask");
        model.Decoder.GradientCheckpointing = false;

        using var side = new LadderSideNetwork(new LadderConfig { ReductionFactor = 4 }, model.Config);
        side.eval();
        using var _ = no_grad();
        using var packedSide = side.Forward(model, ids, packed);
        using var alone = side.Forward(model, tensor(Second).unsqueeze(0));
        Assert.True(Relative(alone, packedSide[.., 5..]) < 1e-5, $"side network {Relative(alone, packedSide[.., 5..]):E2}");
    }

    [Fact]
    public void TheSamplerPacksOnlyWindowsThatHoldADocumentStart()
    {
        // As TokenCorpus makes documents: a document's first token is never a target.
        static TokenStream Document(int first) => new(Enumerable.Range(first, 30).ToArray(), Enumerable.Range(0, 30).Select(i => i > 0).ToArray());
        var two = TokenStream.Concat(new[] { Document(1), Document(40) });
        Assert.Equal(2, two.DocumentCount);
        var sampler = new BatchSampler(two, 10, seed: 1, PackingMode.Documents);
        var windows = sampler.Sequential(1, CPU).ToList();
        Assert.Equal(5, windows.Count);
        Assert.All(windows, w => Assert.Null(w.Packed)); // windows of 10 start at 0, 10, 20, 30, 40: the second document starts a window, inside none
        var shifted = new BatchSampler(two, 7, seed: 1, PackingMode.Documents).Sequential(1, CPU).ToList();
        int packedIndex = shifted.FindIndex(w => w.Packed is not null);
        Assert.Equal(4, packedIndex); // inputs 28..34: the second document starts at 30
        using var positions = shifted[4].Packed!.Positions;
        Assert.Equal(new long[] { 0, 1, 0, 1, 2, 3, 4 }, positions.data<long>().ToArray());
        Assert.Equal(BatchSampler.IgnoreIndex, shifted[4].Targets[0, 1].item<long>()); // token 29 does not predict the next document's first token
        Assert.All(new BatchSampler(two, 7, seed: 1, PackingMode.Stream).Sequential(1, CPU), w => Assert.Null(w.Packed));
    }

    [Fact]
    public void TrainingOnJsonlPacksByDocumentAndOneTextFileTrainsAsBefore()
    {
        using var dir = new TempFolder();
        using var m = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K });
        var text = File.ReadAllText(SharedData.TinyShakespeare)[..30_000];
        var lines = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Take(400).Select(p => System.Text.Json.JsonSerializer.Serialize(new { text = p }));
        File.WriteAllLines(dir.File("d.jsonl"), lines);
        File.WriteAllText(dir.File("s.txt"), text);
        double Loss(string data, PackingMode packing)
        {
            using var fresh = LoadedModel.Load(new ModelLoadOptions { Path = SharedData.Stories260K });
            var options = new TrainingOptions { DataPaths = new[] { dir.File(data) }, MaxSteps = 3, BatchSize = 4, SequenceLength = 64, MaxEvalWindows = 16, Seed = 1, Packing = packing };
            var result = Trainer.Run(fresh, options);
            return result.FinalValidationLoss!.Value;
        }
        double documents = Loss("d.jsonl", PackingMode.Documents), stream = Loss("d.jsonl", PackingMode.Stream);
        Assert.True(double.IsFinite(documents) && double.IsFinite(stream));
        Assert.NotEqual(stream, documents); // short records share windows, and now read alone
        Assert.Equal(Loss("s.txt", PackingMode.Stream), Loss("s.txt", PackingMode.Documents)); // one document: nothing to pack
    }
}
