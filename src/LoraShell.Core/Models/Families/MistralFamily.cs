namespace LoraShell.Core.Models.Families;

/// <summary>
/// transformers' <c>mistral</c>: Llama's layout without biases, and a sliding window — each token
/// attends to the last <c>sliding_window</c> positions, itself included (MistralConfig's default 4096
/// when the key is absent; null turns it off).
/// </summary>
public sealed class MistralFamily : RotaryFamily
{
    public override string ModelType => "mistral";
    public override string Architecture => "MistralForCausalLM";
    public override FamilyLayout Layout { get; } = LlamaLayout();
    protected override int DefaultMaxPositions => 4096 * 32;
    // llama.cpp converts Mistral to its llama architecture, which has no sliding window.
    public override GgufArchitecture Gguf => GgufArchitecture.Llama;

    public override IEnumerable<(string Problem, bool Fatal)> GgufLimitations(ModelConfig c)
    {
        foreach (var l in base.GgufLimitations(c)) yield return l;
        if (c.SlidingWindow is int w && w < c.MaxPositionEmbeddings)
            yield return ($"sliding_window {w}: llama.cpp runs Mistral as its llama architecture, which attends to every earlier token, so sequences longer than {w} tokens score differently there", false);
    }

    public override ModelConfig ReadConfig(ConfigReader r) => base.ReadConfig(r) with
    {
        // An explicit null turns the window off; a missing key means MistralConfig's default.
        SlidingWindow = r.Json.ContainsKey("sliding_window") ? r.NullableInt("sliding_window") : 4096,
    };
}
