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
    public void TheSamplerPacksWholeDocumentsAndCutsOnlyThoseLongerThanAWindow()
    {
        // As TokenCorpus makes documents: a document's first token is never a target.
        static TokenStream Document(int first, int length) => new(Enumerable.Range(first, length).ToArray(), Enumerable.Range(0, length).Select(i => i > 0).ToArray());
        var stream = TokenStream.Concat(new[] { Document(100, 30), Document(200, 5), Document(300, 4) });
        Assert.Equal(3, stream.DocumentCount);
        var windows = new BatchSampler(stream, 10, seed: 1, PackingMode.Documents).Sequential(1, CPU).ToList();
        // The 30-token document: two windows as the stream cut them, then its last 10 tokens; the 5- and 4-token documents share one.
        Assert.Equal(4, windows.Count);
        Assert.Equal(new long[] { 100, 101, 102, 103, 104, 105, 106, 107, 108, 109 }, windows[0].Inputs.data<long>().ToArray());
        Assert.Equal(110, windows[0].Targets[0, 9].item<long>()); // a cut window still predicts the next token of its document
        Assert.Equal(new long[] { 120, 121, 122, 123, 124, 125, 126, 127, 128, 129 }, windows[2].Inputs.data<long>().ToArray());
        Assert.Equal(BatchSampler.IgnoreIndex, windows[2].Targets[0, 9].item<long>()); // the document's last token predicts nothing
        Assert.All(windows.Take(3), w => Assert.Null(w.Packed));
        var shared = windows[3];
        Assert.Equal(new long[] { 200, 201, 202, 203, 204, 300, 301, 302, 303, 0 }, shared.Inputs.data<long>().ToArray());
        Assert.Equal(new long[] { 201, 202, 203, 204, -100, 301, 302, 303, -100, -100 }, shared.Targets.data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 0, 1, 2, 3, 4 }, shared.Packed!.Positions.data<long>().ToArray());

        // Stream: the old cuts, documents running into each other (39 tokens: 3 windows of 10 + 1).
        var cuts = new BatchSampler(stream, 10, seed: 1, PackingMode.Stream).Sequential(1, CPU).ToList();
        Assert.Equal(3, cuts.Count);
        Assert.All(cuts, w => Assert.Null(w.Packed));
        Assert.Equal(new long[] { 120, 121, 122, 123, 124, 125, 126, 127, 128, 129 }, cuts[2].Inputs.data<long>().ToArray());
        Assert.Equal(BatchSampler.IgnoreIndex, cuts[2].Targets[0, 9].item<long>()); // 200 starts a document: never a target
        // One document: Documents cuts it exactly as Stream does.
        var one = Document(1, 45);
        Assert.Equal(new BatchSampler(one, 10, 1, PackingMode.Stream).WindowCount, new BatchSampler(one, 10, 1, PackingMode.Documents).WindowCount);
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
