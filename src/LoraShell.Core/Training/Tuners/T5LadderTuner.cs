using LoraShell.Core.Models.T5;
using LoraShell.Core.SideTuning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training.Tuners;

/// <summary>
/// Ladder side-tuning of a T5 model: the backbone is frozen and runs without autograd; a
/// <see cref="T5LadderSideNetwork"/> (side encoder and side decoder, pruned from the backbone unless it
/// exists already) trains. The result is a side-network folder, as for the decoder-only families.
/// </summary>
internal sealed class T5LadderTuner : SideNetworkTuner
{
    T5LadderSideNetwork? _side;

    public T5LadderTuner(ITrainingSubject subject) : base(subject) { }

    protected override ISideNetwork? Side => _side;

    protected override ISideNetwork LoadSaved(string folder) => T5LadderSideNetwork.Load(folder, EncoderDecoder);

    public override void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log)
    {
        FreezeBackbone();
        if (Subject.EncoderDecoderSideNetwork is null)
        {
            var config = o.Ladder ?? new LadderConfig();
            manual_seed(o.Seed);
            var side = new T5LadderSideNetwork(config, EncoderDecoder.Config);
            try
            {
                side.to(EncoderDecoder.shared.weight!.device);
                if (config.Init == LadderInit.Magnitude) side.InitFromBackbone(EncoderDecoder);
                else if (config.Init == LadderInit.Fisher)
                {
                    using var fisher = FisherImportance.Estimate(EncoderDecoder, o.FisherBatches, FisherLoss ?? throw new InvalidOperationException("No text-to-text data bound for Fisher pruning."));
                    side.InitFromBackbone(EncoderDecoder, fisher.Of);
                }
            }
            catch { side.Dispose(); throw; }
            Subject.EncoderDecoderSideNetwork = side;
            log?.Info($"Side network: width {side.SideConfig.DModel}, {side.EncoderLayers.Count} encoder and {side.DecoderLayers.Count} decoder blocks, {side.parameters().Sum(p => p.numel()):N0} parameters, init {config.Init}.");
        }
        _side = Subject.EncoderDecoderSideNetwork;
        foreach (var p in _side.parameters()) p.requires_grad = true;
    }

    /// <summary>The loss of Fisher batch i (the text-to-text objective sets it before the method is prepared).</summary>
    public Func<int, Tensor>? FisherLoss { get; set; }

    public override EncoderDecoderPass EncoderDecoderPass => new(EncoderDecoder, _side);

    public override void SetGradientCheckpointing(bool on) { } // refused for T5 when the run starts
}
