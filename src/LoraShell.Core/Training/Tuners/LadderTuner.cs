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
internal sealed class LadderTuner : Tuner
{
    LadderSideNetwork? _side;

    public LadderTuner(ITrainingSubject subject) : base(subject) { }

    public override TrainingMethod Method => TrainingMethod.Ladder;
    public override LadderSideNetwork? SideNetwork => _side;

    public override void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log)
    {
        var adapters = Subject.Adapters;
        if (adapters.ActiveNames.Except(adapters.MergedNames).Any() && !adapters.Disabled)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "LadderWithAdapters",
                "Ladder side-tuning keeps the backbone frozen as it is; merge, disable or remove the active adapters first.");
        foreach (var p in Model.parameters()) p.requires_grad = false;
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

    public override IReadOnlyList<(string name, Parameter parameter)> Trainable
        => _side!.named_parameters().Where(p => p.parameter.requires_grad).Select(p => ($"side.{p.name}", p.parameter)).ToList();

    public override Tensor HiddenStates(Tensor ids, PackedLayout? packed = null) => _side!.Hidden(Model, ids, packed: packed);

    public override Tensor Logits(Tensor ids, PackedLayout? packed = null) => _side!.Forward(Model, ids, packed);

    public override string FingerprintExtra => _side!.Config.ToJson();

    // Backward never enters the frozen backbone (it runs without a graph); only the side blocks can recompute.
    public override void SetGradientCheckpointing(bool on) => _side!.GradientCheckpointing = on;

    public override void SetTraining(bool training)
    {
        base.SetTraining(training);
        if (training) _side!.train(); else _side!.eval();
    }

    public override TrainedArtifacts SaveFinal(string output)
    {
        string folder = Path.Combine(output, Trainer.SideNetworkFolder);
        _side!.Save(folder, overwrite: true);
        return new TrainedArtifacts(SideNetworkPath: folder);
    }

    public override void WriteCheckpoint(string folder)
    {
        string target = Path.Combine(folder, Trainer.SideNetworkFolder);
        Directory.CreateDirectory(target);
        _side!.WriteInto(target);
    }

    public override void RestoreCheckpoint(string folder)
    {
        using var restored = LadderSideNetwork.Load(Path.Combine(folder, Trainer.SideNetworkFolder), Model);
        var values = restored.state_dict();
        using var _ = no_grad();
        foreach (var (name, t) in _side!.state_dict()) t.copy_(values[name]);
    }
}
