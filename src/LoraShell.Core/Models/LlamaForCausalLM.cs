using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>One swappable projection of the model: its full HF module path, the layer and its owner.</summary>
public sealed record LinearSlot(string Path, string Name, nn.Module<Tensor, Tensor> Module, ILinearHost Host, int LayerIndex);

/// <summary>
/// A Llama-family causal LM laid out exactly like Hugging Face's <c>LlamaForCausalLM</c>, so its
/// state-dict names (<c>model.layers.N.self_attn.q_proj.weight</c>, …) are HF's.
/// With tied embeddings there is no <c>lm_head</c>: logits use <c>model.embed_tokens.weight</c>.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module<Tensor, Tensor>
{
    public LlamaModel model;
    public Linear? lm_head;

    public LlamaForCausalLM(LlamaConfig config) : base(nameof(LlamaForCausalLM))
    {
        config.Validate("model construction");
        Config = config;
        model = new LlamaModel(config);
        lm_head = config.TieWordEmbeddings ? null : nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    public LlamaConfig Config { get; }
    public Device Device => model.embed_tokens.weight!.device;
    public ScalarType DType => model.embed_tokens.weight!.dtype;

    /// <summary>Logits [batch, seq, vocab] for token ids [batch, seq].</summary>
    public override Tensor forward(Tensor inputIds) => Logits(model.Forward(inputIds));

    /// <summary>Logits for the new positions, appending their keys/values to <paramref name="cache"/>.</summary>
    public Tensor Forward(Tensor inputIds, KvCache? cache) => Logits(model.Forward(inputIds, cache));

    /// <summary>Projects final hidden states to vocabulary logits.</summary>
    public Tensor Logits(Tensor hidden)
        => lm_head is null ? nn.functional.linear(hidden, model.embed_tokens.weight!) : lm_head.call(hidden);

    public KvCache NewCache() => new(Config.NumHiddenLayers);

    /// <summary>Every projection inside the decoder layers (not the output head), in layer order.</summary>
    public IEnumerable<LinearSlot> LinearSlots()
    {
        for (int i = 0; i < model.layers.Count; i++)
        {
            var layer = model.layers[i];
            foreach (var (name, module) in layer.self_attn.Projections)
                yield return new LinearSlot($"model.layers.{i}.self_attn.{name}", name, module, layer.self_attn, i);
            foreach (var (name, module) in layer.mlp.Projections)
                yield return new LinearSlot($"model.layers.{i}.mlp.{name}", name, module, layer.mlp, i);
        }
    }
}
