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

    public override ModelConfig ReadConfig(ConfigReader r) => base.ReadConfig(r) with
    {
        // An explicit null turns the window off; a missing key means MistralConfig's default.
        SlidingWindow = r.Json.ContainsKey("sliding_window") ? r.NullableInt("sliding_window") : 4096,
    };
}
