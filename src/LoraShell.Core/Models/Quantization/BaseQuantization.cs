namespace LoraShell.Core.Models.Quantization;

/// <summary>How the frozen weights of the decoder's projections are stored.</summary>
public enum BaseQuantization
{
    /// <summary>Dense, in the model's dtype.</summary>
    None,
    /// <summary>8-bit integers with one float32 scale per output row (absmax / 127): about 1 byte per weight.</summary>
    Int8,
    /// <summary>4-bit NormalFloat (QLoRA, bitsandbytes' nf4): 16 levels, one absmax per 64 weights: about 0.56 byte per weight.</summary>
    Nf4,
}
