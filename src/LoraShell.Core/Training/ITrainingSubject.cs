using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Training;

/// <summary>
/// What the trainer needs of a loaded model: the network, its adapters, its tokenizer and a place for
/// the side network Ladder training builds. Declared here and implemented by the session layer above
/// (LoadedModel), so training never depends on how a model was loaded.
/// </summary>
public interface ITrainingSubject
{
    /// <summary>The model as adapters and tuners see it: a decoder-only <see cref="CausalLM"/> or T5.</summary>
    IAdaptableModel Network { get; }
    /// <summary>The decoder-only model (language modelling, classification); refused with a clear error for T5.</summary>
    CausalLM Model { get; }
    LoraAdapterSet Adapters { get; }
    ITextTokenizer RequireTokenizer();
    /// <summary>The ladder side network beside the model; Ladder training creates one when it is null.</summary>
    LadderSideNetwork? SideNetwork { get; set; }
    /// <summary>The ladder side network beside a T5 model (encoder and decoder side stacks).</summary>
    T5LadderSideNetwork? EncoderDecoderSideNetwork { get; set; }
    /// <summary>A short name for results and messages.</summary>
    string Name { get; }
    /// <summary>Where the model came from (full path).</summary>
    string SourcePath { get; }
    /// <summary>What an adapter records as base_model_name_or_path: the model's hub id, or the path as the user gave it.</summary>
    string NameOrPath { get; }
    /// <summary>Tokenizer files to copy beside a saved model, so the folder loads on its own.</summary>
    IEnumerable<string> TokenizerFiles { get; }
}
