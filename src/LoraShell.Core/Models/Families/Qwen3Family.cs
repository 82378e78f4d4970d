namespace LoraShell.Core.Models.Families;

/// <summary>
/// transformers' <c>qwen3</c>: Llama's layout plus per-head RMSNorms on q and k (<c>q_norm</c>,
/// <c>k_norm</c>, weight [head_dim]) applied before RoPE; head_dim is explicit (default 128, not
/// hidden / heads); attention_bias puts biases on q, k, v and o.
/// </summary>
public sealed class Qwen3Family : RotaryFamily
{
    public override string ModelType => "qwen3";
    public override string Architecture => "Qwen3ForCausalLM";
    public override FamilyLayout Layout { get; } = LlamaLayout(qkNorm: true);
    protected override int DefaultMaxPositions => 32768;

    public override IEnumerable<(string Problem, bool Fatal)> GgufLimitations(ModelConfig c)
    {
        foreach (var l in base.GgufLimitations(c)) yield return l;
        if (c.AttentionBias) yield return ("attention_bias true: llama.cpp's qwen3 architecture has no attention biases", true);
    }

    public override ModelConfig ReadConfig(ConfigReader r)
    {
        Qwen2Family.RefuseSlidingWindow(r);
        var c = base.ReadConfig(r);
        return c with { HeadDimOverride = c.HeadDimOverride ?? 128, AttentionBias = r.Bool("attention_bias", false) };
    }
}
