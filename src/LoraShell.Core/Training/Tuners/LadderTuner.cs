using LoraShell.Core.Models.Blocks;
using LoraShell.Core.SideTuning;
using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Training.Tuners;

/// <summary>
/// Ladder side-tuning: the backbone is frozen and runs without autograd; a side network (built here,
/// pruned from the backbone unless it exists already) trains. The result is a side-network folder.
/// </summary>
internal sealed class LadderTuner : SideNetworkTuner
{
    LadderSideNetwork? _side;

    public LadderTuner(ITrainingSubject subject) : base(subject) { }

    protected override ISideNetwork? Side => _side;

    protected override ISideNetwork LoadSaved(string folder) => LadderSideNetwork.Load(folder, Model);

    public override void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log)
    {
        FreezeBackbone();
        if (Subject.SideNetwork is null)
        {
            var config = o.Ladder ?? new LadderConfig();
            manual_seed(o.Seed);
            var side = new LadderSideNetwork(config, Model.Config);
            try
            {
                side.to(Model.Device);
                if (config.Init == LadderInit.Magnitude) side.InitFromBackbone(Model);
                else if (config.Init == LadderInit.Fisher)
                {
                    if (Model.Format.Quantization != Models.Quantization.BaseQuantization.None)
                        throw LoraShellException.InvalidArgument("FisherOnQuantizedBase",
                            $"-PruneBy Fisher needs the gradients of the backbone's weights, which a {Model.Format.Quantization} base does not have; use -PruneBy Magnitude (it reads the dequantized weights) or Random.", config.Init);
                    using var fisher = FisherImportance.Estimate(Model, fisherData(), o);
                    side.InitFromBackbone(Model, fisher.Of);
                }
            }
            catch { side.Dispose(); throw; }
            Subject.SideNetwork = side;
            log?.Info($"Side network: width {side.SideConfig.HiddenSize}, {side.Layers.Count} blocks, {side.parameters().Sum(p => p.numel()):N0} parameters, init {config.Init}.");
        }
        _side = Subject.SideNetwork;
        foreach (var p in _side.parameters()) p.requires_grad = true;
    }

    public override Tensor HiddenStates(Tensor ids, PackedLayout? packed = null) => _side!.Hidden(Model, ids, packed: packed);

    public override Tensor Logits(Tensor ids, PackedLayout? packed = null) => _side!.Forward(Model, ids, packed);

    // Backward never enters the frozen backbone (it runs without a graph); only the side blocks can recompute.
    public override void SetGradientCheckpointing(bool on) => _side!.GradientCheckpointing = on;
}
