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
internal sealed class T5LadderTuner : Tuner
{
    T5LadderSideNetwork? _side;

    public T5LadderTuner(ITrainingSubject subject) : base(subject) { }

    public override TrainingMethod Method => TrainingMethod.Ladder;
    public override double[]? GateValues => _side?.GateValues();

    public override void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log)
    {
        var adapters = Subject.Adapters;
        if (adapters.ActiveNames.Except(adapters.MergedNames).Any() && !adapters.Disabled)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "LadderWithAdapters",
                "Ladder side-tuning keeps the backbone frozen as it is; merge, disable or remove the active adapters first.");
        foreach (var p in EncoderDecoder.parameters()) p.requires_grad = false;
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

    public override IReadOnlyList<(string name, Parameter parameter)> Trainable
        => _side!.named_parameters().Where(p => p.parameter.requires_grad).Select(p => ($"side.{p.name}", p.parameter)).ToList();

    public override EncoderDecoderPass EncoderDecoderPass => new(EncoderDecoder, _side);

    public override string FingerprintExtra => _side!.Config.ToJson();

    public override void SetGradientCheckpointing(bool on) { } // refused for T5 when the run starts

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
        using var restored = T5LadderSideNetwork.Load(Path.Combine(folder, Trainer.SideNetworkFolder), EncoderDecoder);
        var values = restored.state_dict();
        using var _ = no_grad();
        foreach (var (name, t) in _side!.state_dict()) t.copy_(values[name]);
    }
}
