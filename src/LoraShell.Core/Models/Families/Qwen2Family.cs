namespace LoraShell.Core.Models.Families;

/// <summary>
/// transformers' <c>qwen2</c> (Qwen1.5, Qwen2, Qwen2.5): Llama's layout with biases on q, k and v
/// (not o). Its sliding window applies only with use_sliding_window = true, which is refused.
/// </summary>
public sealed class Qwen2Family : RotaryFamily
{
    public override string ModelType => "qwen2";
    public override string Architecture => "Qwen2ForCausalLM";
    public override FamilyLayout Layout { get; } = LlamaLayout();
    protected override int DefaultMaxPositions => 32768;

    public override ModelConfig ReadConfig(ConfigReader r)
    {
        RefuseSlidingWindow(r);
        return base.ReadConfig(r) with { QkvBias = true };
    }

    /// <summary>Qwen's use_sliding_window marks some layers as windowed (max_window_layers); not implemented.</summary>
    internal static void RefuseSlidingWindow(ConfigReader r)
    {
        if (r.Bool("use_sliding_window", false))
            throw LoraShellException.InvalidData("UnsupportedSlidingWindow",
                $"'{r.Source}' sets use_sliding_window = true ({r.String("model_type", "")} windows layers from max_window_layers on); LoraShell does not implement that. Set it to false to run full attention.", r.Source);
    }
}
