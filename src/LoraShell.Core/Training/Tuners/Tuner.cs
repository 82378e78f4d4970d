using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.SideTuning;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training.Tuners;

/// <summary>Where a finished run put what it trained.</summary>
public sealed record TrainedArtifacts(string? AdapterPath = null, string? ModelPath = null, string? SideNetworkPath = null);

/// <summary>
/// What one training method (PEFT would say: one tuner) brings to the training loop: which parameters
/// it sets trainable, how the final hidden states are computed, and what it saves at the end, writes
/// into a checkpoint and restores from one. The loop in <see cref="Trainer"/> is the same for all of them;
/// the task's data and loss come from a <see cref="TrainingObjective"/>.
/// </summary>
internal abstract class Tuner
{
    protected Tuner(ITrainingSubject subject) => Subject = subject;

    /// <summary>The tuner for <paramref name="method"/>: the only place that switches on the method.</summary>
    public static Tuner For(TrainingMethod method, ITrainingSubject subject) => method switch
    {
        TrainingMethod.Full => new FullTuner(subject),
        TrainingMethod.Lora => new LoraTuner(subject),
        TrainingMethod.Ladder => subject.Network is Models.T5.T5ForConditionalGeneration ? new T5LadderTuner(subject) : new LadderTuner(subject),
        _ => throw LoraShellException.InvalidArgument("MethodNotAvailable", $"Training method {method} is not available.", method),
    };

    public ITrainingSubject Subject { get; }
    /// <summary>The decoder-only model (the language-modelling and classification paths).</summary>
    protected CausalLM Model => Subject.Model;
    /// <summary>The model whatever its architecture.</summary>
    protected IAdaptableModel Network => Subject.Network;
    /// <summary>The encoder-decoder model (the text-to-text path).</summary>
    protected Models.T5.T5ForConditionalGeneration EncoderDecoder => (Models.T5.T5ForConditionalGeneration)Subject.Network;

    public abstract TrainingMethod Method { get; }

    /// <summary>The adapter being trained (LoRA), for checkpoints and results.</summary>
    public virtual string? AdapterName => null;

    /// <summary>The ladders' gate values μ, for the result (Ladder only).</summary>
    public virtual double[]? GateValues => null;

    /// <summary>
    /// Sets what trains. <paramref name="fisherData"/> feeds Fisher pruning and is asked for only when
    /// that init is chosen (building it costs a pass over the data for classification).
    /// </summary>
    public abstract void Prepare(TrainingOptions o, Func<TokenStream> fisherData, RunLog? log);

    /// <summary>What the optimizer updates, named as its state is stored in checkpoints.</summary>
    public virtual IReadOnlyList<(string name, Parameter parameter)> Trainable
        => Network.Module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();

    /// <summary>Final hidden states [batch, seq, hidden] that the LM head or a classification head reads.</summary>
    public virtual Tensor HiddenStates(Tensor ids, PackedLayout? packed = null) => Model.Decoder.Forward(ids, packed: packed);

    /// <summary>Vocabulary logits of the whole trained model.</summary>
    public virtual Tensor Logits(Tensor ids, PackedLayout? packed = null) => Model.Forward(ids, packed);

    /// <summary>Text-to-text: the encoder-decoder as this method computes it (with its side network, for Ladder).</summary>
    public virtual EncoderDecoderPass EncoderDecoderPass => new(EncoderDecoder);

    /// <summary>What, beside the model and the loop settings, tells this method's checkpoints from another setup's (an adapter's or side network's config).</summary>
    public virtual string FingerprintExtra => "";

    public virtual void SetTraining(bool training)
    {
        if (training) Network.Module.train(); else Network.Module.eval();
    }

    /// <summary>Recompute layers in backward instead of keeping their activations (see <see cref="Models.Blocks.LayerRecompute"/>).</summary>
    public virtual void SetGradientCheckpointing(bool on)
    {
        if (Network is CausalLM decoderOnly) decoderOnly.Decoder.GradientCheckpointing = on;
        // T5: refused when the run starts (TrainingRun), so only "off" reaches here.
    }

    /// <summary>Writes the result of a finished run under <paramref name="output"/>.</summary>
    public abstract TrainedArtifacts SaveFinal(string output);

    /// <summary>Writes the trained weights into a checkpoint folder (read back by <see cref="RestoreCheckpoint"/>).</summary>
    public abstract void WriteCheckpoint(string folder);

    public abstract void RestoreCheckpoint(string folder);
}
