using LoraShell.Core.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>An encoder or decoder stack: its blocks and final_layer_norm (the token embedding is the model's shared one).</summary>
public sealed class T5Stack : nn.Module
{
    public ModuleList<T5Block> block;
    public RmsNorm final_layer_norm;
    readonly T5Config _c;
    readonly bool _decoder;

    public T5Stack(T5Config c, bool decoder, int? layers = null) : base(nameof(T5Stack))
    {
        _c = c;
        _decoder = decoder;
        block = nn.ModuleList<T5Block>();
        int count = layers ?? (decoder ? c.NumDecoderLayers : c.NumLayers);
        for (int i = 0; i < count; i++) block.Add(new T5Block(c, decoder, hasRelativeBias: i == 0));
        final_layer_norm = new RmsNorm(c.DModel, c.LayerNormEpsilon);
        RegisterComponents();
    }

    /// <summary>The relative position bias table, held by the first block and shared by all.</summary>
    public Embedding BiasTable => block[0].Self.SelfAttention.relative_attention_bias!;

    /// <summary>
    /// The self-attention bias of <paramref name="length"/> new positions after <paramref name="past"/> cached
    /// ones: relative position bias (bidirectional in the encoder, causal in the decoder), plus the encoder's
    /// padding mask (1 for tokens, 0 for padding).
    /// </summary>
    public Tensor SelfBias(long length, long past, Tensor? paddingMask, ScalarType dtype, Device device)
    {
        long total = past + length;
        var bias = RelativePositionBias.Compute(BiasTable, length, total, past, bidirectional: !_decoder, _c.RelativeAttentionNumBuckets, _c.RelativeAttentionMaxDistance).to(dtype);
        if (_decoder)
        {
            var future = ones(length, total, dtype: ScalarType.Bool, device: device).triu(past + 1); // query past+i sees keys 0..past+i
            bias = bias.masked_fill(future, MinValue(dtype));
        }
        return PaddingMask(paddingMask, dtype) is { } mask ? bias + mask : bias;
    }

    /// <summary>The cross-attention bias: the encoder's padding mask, or nothing to add.</summary>
    public static Tensor CrossBias(Tensor? encoderMask, ScalarType dtype, Device device)
        => PaddingMask(encoderMask, dtype) ?? zeros(1, dtype: dtype, device: device);

    /// <summary>
    /// The stack on embedded tokens <paramref name="h"/>: every block, then final_layer_norm.
    /// <paramref name="layerOutput"/> hears the embeddings as layer -1 and each block's output (before the final norm).
    /// </summary>
    public Tensor Forward(Tensor h, Tensor selfBias, Tensor? encoderOutput = null, Tensor? crossBias = null, T5DecoderCache? cache = null, Action<int, Tensor>? layerOutput = null)
    {
        layerOutput?.Invoke(-1, h);
        for (int i = 0; i < block.Count; i++)
        {
            h = block[i].Forward(h, selfBias, encoderOutput, crossBias, cache, i);
            layerOutput?.Invoke(i, h);
        }
        return final_layer_norm.forward(h);
    }

    /// <summary>The additive mask for padded keys: [B, 1, 1, S], 0 where attended, the dtype's lowest value where not (as transformers).</summary>
    static Tensor? PaddingMask(Tensor? attentionMask, ScalarType dtype)
        => attentionMask is null ? null : ((1 - attentionMask.to(dtype)) * MinValue(dtype)).unsqueeze(1).unsqueeze(1);

    static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => double.MinValue,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float16 => -65504.0,
        _ => float.MinValue,
    };
}
