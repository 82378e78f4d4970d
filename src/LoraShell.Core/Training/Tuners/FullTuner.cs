using LoraShell.Core.IO;
using LoraShell.Core.Models;

namespace LoraShell.Core.Training.Tuners;

/// <summary>Full fine-tuning: every weight trains; the result is a Hugging Face model folder.</summary>
internal sealed class FullTuner : Tuner
{
    public FullTuner(ITrainingSubject subject) : base(subject) { }

    public override TrainingMethod Method => TrainingMethod.Full;

    public override void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log)
    {
        var adapters = Subject.Adapters;
        if (adapters.Names.Count > 0)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "FullWithAdapters",
                $"Full fine-tuning trains the base weights, but the model holds adapter(s) {string.Join(", ", adapters.Names)}. Merge or remove them first, or use -Method Lora.");
        if (Model.QuantizedProjections().Any()) // merged ones too: their codes would go stale under a full update
            throw new LoraShellException(LoraErrorKind.InvalidArgument, "QuantizedFullFineTune",
                $"The model's projections are stored {Model.Format.Quantization}: quantized weights are frozen, so they cannot be fully fine-tuned. Train -Method Lora (QLoRA) or Ladder on them, or import the model without -Quantization.");
        foreach (var p in Model.parameters()) p.requires_grad = true;
    }

    public override TrainedArtifacts SaveFinal(string output)
        => new(ModelPath: HuggingFaceWriter.Save(Model, Path.Combine(output, Trainer.ModelFolder), overwrite: true, Subject.TokenizerFiles).FullName);

    public override void WriteCheckpoint(string folder)
    {
        string target = Path.Combine(folder, Trainer.ModelFolder);
        Directory.CreateDirectory(target);
        HuggingFaceWriter.WriteInto(Model, target);
    }

    public override void RestoreCheckpoint(string folder)
    {
        using var weights = SafetensorsCheckpoint.Open(Path.Combine(folder, Trainer.ModelFolder));
        var shapes = weights.Names.ToDictionary(n => n, n => weights.Entry(n).Shape);
        StateDictLoader.Load(Model, folder, shapes, weights.Read, Model.Config.TieWordEmbeddings ? new HashSet<string> { "lm_head.weight" } : null);
    }
}
