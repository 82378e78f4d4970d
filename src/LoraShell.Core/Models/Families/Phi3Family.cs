namespace LoraShell.Core.Models.Families;

/// <summary>
/// transformers' <c>phi3</c> (Phi-3, Phi-3.5 mini): fused <c>qkv_proj</c> (rows q, then k, then v) and
/// <c>gate_up_proj</c> (gate half first), partial_rotary_factor, Mistral's sliding window. The long-
/// context rope_scaling types (longrope, su) are refused.
/// </summary>
public sealed class Phi3Family : RotaryFamily
{
    public override string ModelType => "phi3";
    public override string Architecture => "Phi3ForCausalLM";
    public override FamilyLayout Layout { get; } = LlamaLayout(
        attention: new ProjectionName[] { new("qkv_proj", ProjectionRole.QueryKeyValue), new("o_proj", ProjectionRole.Output) },
        mlp: new ProjectionName[] { new("gate_up_proj", ProjectionRole.GateUp), new("down_proj", ProjectionRole.Down) });
    protected override IReadOnlyCollection<string> RopeScalingTypes => Array.Empty<string>();
    protected override int DefaultMaxPositions => 4096;
    protected override double DefaultNormEps => 1e-5;

    public override IEnumerable<(string Problem, bool Fatal)> GgufLimitations(ModelConfig c)
    {
        foreach (var l in base.GgufLimitations(c)) yield return l;
        if (c.SlidingWindow is int w && w < c.MaxPositionEmbeddings)
            yield return ($"sliding_window {w}: llama.cpp runs Phi-3 with its sliding window disabled (it attends to every earlier token), so sequences longer than {w} tokens score differently there", false);
    }

    public override ModelConfig ReadConfig(ConfigReader r) => base.ReadConfig(r) with
    {
        PartialRotaryFactor = r.Double("partial_rotary_factor", 1.0),
        SlidingWindow = r.NullableInt("sliding_window"),
        BosTokenId = r.FirstId("bos_token_id", 1),
        EosTokenId = r.FirstId("eos_token_id", 32000),
    };
}
