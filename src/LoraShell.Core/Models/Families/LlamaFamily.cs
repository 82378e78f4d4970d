using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.Families;

/// <summary>
/// transformers' <c>llama</c> (Llama 2 and 3.x, TinyLlama, SmolLM2 and llama2.c conversions):
/// attention_bias (q, k, v, o), mlp_bias, explicit head_dim, rope_scaling llama3 / linear / dynamic.
/// </summary>
public sealed class LlamaFamily : RotaryFamily
{
    public const string Type = "llama";
    public override string ModelType => Type;
    public override string Architecture => "LlamaForCausalLM";
    public override GgufArchitecture Gguf => GgufArchitecture.Llama;
    public override FamilyLayout Layout { get; } = LlamaLayout();

    public override ModelConfig ReadConfig(ConfigReader r) => base.ReadConfig(r) with
    {
        AttentionBias = r.Bool("attention_bias", false),
        MlpBias = r.Bool("mlp_bias", false),
    };

    public override JsonObject WriteConfig(ModelConfig c)
    {
        var obj = base.WriteConfig(c);
        obj["attention_bias"] = c.AttentionBias;
        obj["mlp_bias"] = c.MlpBias;
        return obj;
    }
}
