using LoraShell.Core.Models;
using LoraShell.Core.Session;
using static TorchSharp.torch;

namespace LoraShell.Bench;

/// <summary>The model shapes the benchmarks use.</summary>
static class BenchModels
{
    /// <summary>
    /// A synthetic ~50M-parameter Llama: hidden 512, 10 layers, 8 heads, SwiGLU 1536, vocab 32000,
    /// tied embeddings (50.5M parameters). Random weights: speed does not depend on their values.
    /// </summary>
    public static readonly LlamaConfig Synthetic50M = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 10, NumAttentionHeads = 8, NumKeyValueHeads = 8,
        VocabSize = 32000, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, TieWordEmbeddings = true,
    };

    public static string SharedRoot() => LoraShell.Core.Experiments.ExperimentSetup.FindShared(AppContext.BaseDirectory);

    public static LlamaForCausalLM Load(string name)
    {
        if (name == "stories260K")
        {
            var loaded = LoadedModel.Load(new ModelLoadOptions { Path = Path.Combine(SharedRoot(), "models", "stories260K", "stories260K.bin") });
            return loaded.Model;
        }
        if (name == "synthetic50M")
        {
            manual_seed(0);
            var model = new LlamaForCausalLM(Synthetic50M);
            model.eval();
            return model;
        }
        throw new ArgumentException($"Unknown model '{name}' (stories260K, synthetic50M).");
    }
}
