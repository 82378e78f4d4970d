using LoraShell.Core.IO;
using LoraShell.Core.Lora;

namespace LoraShell.Core.Training.Tuners;

/// <summary>LoRA: the active adapter's A and B (plus its biases and modules_to_save) train; the result is a PEFT adapter folder.</summary>
internal sealed class LoraTuner : Tuner
{
    string? _adapter;

    public LoraTuner(ITrainingSubject subject) : base(subject) { }

    public override TrainingMethod Method => TrainingMethod.Lora;
    public override string? AdapterName => _adapter;
    LoraAdapterSet Adapters => Subject.Adapters;

    public override void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log)
    {
        string? name = o.AdapterName ?? Adapters.ActiveNames.FirstOrDefault();
        if (name is null)
        {
            name = "default";
            // The same adapter Add-LoraAdapter adds without arguments: PEFT's defaults.
            var config = new LoraConfig { BaseModelNameOrPath = Subject.NameOrPath, TargetModules = Subject.Network.DefaultLoraTargets };
            Adapters.Add(name, config, o.Seed);
            log?.Info($"The model had no adapter; added 'default' (r {config.R}, alpha {config.LoraAlpha}, {string.Join(" and ", config.TargetModules!)}), as Add-LoraAdapter does without arguments.");
        }
        if (!Adapters.Contains(name)) throw LoraShellException.NotFound("AdapterNotFound", $"The model has no adapter named '{name}'.", name);
        if (Adapters.MergedNames.Contains(name))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "AdapterMerged", $"Adapter '{name}' is merged into the base weights; unmerge it before training it.", name);
        if (Adapters.HasUnseededInitialization(name))
        {
            // Add-LoraAdapter without -Seed, then a seeded run: the seed covers the whole run, the adapter's
            // start included, as it does when training adds the adapter itself.
            Adapters.Reinitialize(name, o.Seed);
            log?.Info($"Adapter '{name}' was initialised without a seed and not trained yet; its factors were drawn again from the run's seed {o.Seed}, so the run reproduces. Add-LoraAdapter -Seed fixes them there instead.");
        }
        Adapters.KeepInitialization(name);
        Adapters.Enable();
        Adapters.SetActive(name);
        Adapters.MarkTrainable(name);
        _adapter = name;
    }

    public override string FingerprintExtra => Adapters.ConfigOf(_adapter!).ToJson();

    public override TrainedArtifacts SaveFinal(string output)
        => new(AdapterPath: PeftAdapterFormat.Save(Adapters, _adapter!, Path.Combine(output, Trainer.AdapterFolder), overwrite: true, Subject.NameOrPath).Folder.FullName);

    public override void WriteCheckpoint(string folder)
    {
        string target = Path.Combine(folder, Trainer.AdapterFolder);
        Directory.CreateDirectory(target);
        PeftAdapterFiles.WriteInto(target, Adapters.ConfigOf(_adapter!), PeftAdapterFormat.StateDict(Adapters, _adapter!));
    }

    public override void RestoreCheckpoint(string folder)
    {
        using var file = SafetensorsFile.Open(Path.Combine(folder, Trainer.AdapterFolder, PeftAdapterFiles.WeightsFile));
        PeftAdapterFormat.CopyInto(Adapters, _adapter!, file, folder, errorId: "CheckpointMismatch");
    }
}
