using LoraShell.Core.SideTuning;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training.Tuners;

/// <summary>
/// What Ladder side-tuning does the same for every architecture: the backbone frozen as it is (active
/// adapters refused), only the side network trains, and its folder is the result and the checkpoint's part.
/// The architecture's tuner builds the side network and runs it beside its backbone.
/// </summary>
internal abstract class SideNetworkTuner : Tuner
{
    protected SideNetworkTuner(ITrainingSubject subject) : base(subject) { }

    public override TrainingMethod Method => TrainingMethod.Ladder;

    /// <summary>The side network being trained (set by Prepare).</summary>
    protected abstract ISideNetwork? Side { get; }

    /// <summary>A side network read back from a checkpoint's folder, for this backbone.</summary>
    protected abstract ISideNetwork LoadSaved(string folder);

    public override double[]? GateValues => Side?.GateValues();

    /// <summary>Ladder keeps the backbone frozen as it is: unmerged active adapters are refused; the backbone's weights stop training.</summary>
    protected void FreezeBackbone()
    {
        var adapters = Subject.Adapters;
        if (adapters.ActiveNames.Except(adapters.MergedNames).Any() && !adapters.Disabled)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "LadderWithAdapters",
                "Ladder side-tuning keeps the backbone frozen as it is; merge, disable or remove the active adapters first.");
        foreach (var p in Network.Module.parameters()) p.requires_grad = false;
    }

    public override IReadOnlyList<(string name, Parameter parameter)> Trainable
        => Side!.Module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => ($"side.{p.name}", p.parameter)).ToList();

    public override string FingerprintExtra => Side!.Config.ToJson();

    public override void SetTraining(bool training)
    {
        base.SetTraining(training);
        if (training) Side!.Module.train(); else Side!.Module.eval();
    }

    public override TrainedArtifacts SaveFinal(string output)
    {
        string folder = Path.Combine(output, Trainer.SideNetworkFolder);
        Side!.Save(folder, overwrite: true);
        return new TrainedArtifacts(SideNetworkPath: folder);
    }

    public override void WriteCheckpoint(string folder)
    {
        string target = Path.Combine(folder, Trainer.SideNetworkFolder);
        Directory.CreateDirectory(target);
        Side!.WriteInto(target);
    }

    public override void RestoreCheckpoint(string folder)
    {
        var restored = LoadSaved(Path.Combine(folder, Trainer.SideNetworkFolder));
        using var module = restored.Module;
        var values = module.state_dict();
        using var _ = no_grad();
        foreach (var (name, t) in Side!.Module.state_dict()) t.copy_(values[name]);
    }
}
