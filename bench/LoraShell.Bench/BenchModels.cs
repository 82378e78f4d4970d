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
    public static readonly ModelConfig Synthetic50M = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 10, NumAttentionHeads = 8, NumKeyValueHeads = 8,
        VocabSize = 32000, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, TieWordEmbeddings = true,
    };

    /// <summary>
    /// A random model of one family at the same size as the others: width 512, 6 layers, 8 heads, gated
    /// MLP 1536 (GPT-2's plain MLP 2304, the same weights), vocab 32000; each family's own features on
    /// (Mistral's window 128 &lt; the 256-token sequence, Qwen2's biases, Qwen3's q/k norms, Phi-3's fused
    /// projections, GPT-2's Conv1D and learned positions).
    /// </summary>
    public static CausalLM Family(string family, bool quick)
    {
        var json = family == "gpt2"
            ? new System.Text.Json.Nodes.JsonObject { ["model_type"] = "gpt2", ["n_embd"] = 512, ["n_layer"] = quick ? 2 : 6, ["n_head"] = 8, ["n_inner"] = 2304, ["n_positions"] = 1024, ["vocab_size"] = 32000, ["bos_token_id"] = 0, ["eos_token_id"] = 0 }
            : new System.Text.Json.Nodes.JsonObject
            {
                ["model_type"] = family, ["hidden_size"] = 512, ["intermediate_size"] = 1536, ["num_hidden_layers"] = quick ? 2 : 6,
                ["num_attention_heads"] = 8, ["num_key_value_heads"] = 8, ["vocab_size"] = 32000, ["max_position_embeddings"] = 1024,
                ["head_dim"] = 64, ["sliding_window"] = family == "mistral" ? 128 : null, ["tie_word_embeddings"] = true,
                ["bos_token_id"] = 1, ["eos_token_id"] = 2,
            };
        manual_seed(0);
        var model = new CausalLM(ModelConfig.FromJson(json.ToJsonString(), family));
        model.eval();
        return model;
    }

    /// <summary>TinyLlama-1.1B's shape (1,100,048,384 parameters); quick: a tiny stand-in with the same features.</summary>
    public static ModelConfig TinyLlamaShape(bool quick) => quick
        ? new() { HiddenSize = 128, IntermediateSize = 352, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5 }
        : new() { HiddenSize = 2048, IntermediateSize = 5632, NumHiddenLayers = 22, NumAttentionHeads = 32, NumKeyValueHeads = 4, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000 };

    /// <summary>
    /// A Hugging Face folder holding a random TinyLlama-shaped model in bfloat16 (2.2 GB; generated on
    /// first use under out/bench-models, never committed), so the scenarios measure loading from disk as
    /// a user's model would load. Written beside its final name and renamed, so an interrupted run leaves
    /// nothing a later one would trust.
    /// </summary>
    public static string TinyLlamaFolder(bool quick)
    {
        string folder = Path.Combine(RepoRoot(), "out", "bench-models", quick ? "tinyllama-shape-quick" : "tinyllama-1.1b-shape");
        if (File.Exists(Path.Combine(folder, "config.json"))) return folder;
        string partial = folder + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        manual_seed(0);
        using (var model = new CausalLM(TinyLlamaShape(quick), new WeightFormat { DType = ScalarType.BFloat16 }))
            HuggingFaceWriter.Save(model, partial, overwrite: true);
        Directory.Move(partial, folder);
        LoraShell.Core.IO.NativeMemory.ReleaseManagedGarbage();
        LoraShell.Core.IO.NativeMemory.Trim();
        return folder;
    }

    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraShell.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No LoraShell.sln above {AppContext.BaseDirectory}.");
    }

    public static string SharedRoot() => LoraShell.Core.Experiments.ExperimentSetup.FindShared(AppContext.BaseDirectory);

    public static CausalLM Load(string name)
    {
        if (name == "stories260K")
        {
            var loaded = LoadedModel.Load(new ModelLoadOptions { Path = Path.Combine(SharedRoot(), "models", "stories260K", "stories260K.bin") });
            return loaded.Model;
        }
        if (name == "synthetic50M")
        {
            manual_seed(0);
            var model = new CausalLM(Synthetic50M);
            model.eval();
            return model;
        }
        throw new ArgumentException($"Unknown model '{name}' (stories260K, synthetic50M).");
    }
}
