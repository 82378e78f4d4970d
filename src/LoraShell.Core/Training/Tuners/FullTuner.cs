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
        if (Network.QuantizedProjections().Any()) // merged ones too: their codes would go stale under a full update
            throw new LoraShellException(LoraErrorKind.InvalidArgument, "QuantizedFullFineTune",
                $"The model's projections are stored {Network.Format.Quantization}: quantized weights are frozen, so they cannot be fully fine-tuned. Train -Method Lora (QLoRA) or Ladder on them, or import the model without -Quantization.");
        foreach (var p in Network.Module.parameters()) p.requires_grad = true;
    }

    public override TrainedArtifacts SaveFinal(string output)
    {
        string folder = Path.Combine(output, Trainer.ModelFolder);
        var saved = Network is Models.T5.T5ForConditionalGeneration t5
            ? Models.T5.T5Writer.Save(t5, folder, overwrite: true, Subject.TokenizerFiles)
            : HuggingFaceWriter.Save(Model, folder, overwrite: true, Subject.TokenizerFiles);
        return new(ModelPath: saved.FullName);
    }

    public override void WriteCheckpoint(string folder)
    {
        string target = Path.Combine(folder, Trainer.ModelFolder);
        Directory.CreateDirectory(target);
        if (Network is Models.T5.T5ForConditionalGeneration t5) Models.T5.T5Writer.WriteInto(t5, target);
        else HuggingFaceWriter.WriteInto(Model, target);
    }

    public override void RestoreCheckpoint(string folder)
    {
        if (Network is Models.T5.T5ForConditionalGeneration t5) { Models.T5.T5Loader.LoadWeights(t5, Path.Combine(folder, Trainer.ModelFolder)); return; }
        using var weights = SafetensorsCheckpoint.Open(Path.Combine(folder, Trainer.ModelFolder));
        var shapes = weights.Names.ToDictionary(n => n, n => weights.Entry(n).Shape);
        StateDictLoader.Load(Model, folder, shapes, weights.Read, Model.Config.TieWordEmbeddings ? new HashSet<string> { "lm_head.weight" } : null);
    }
}
