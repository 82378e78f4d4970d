namespace LoraShell.Core.Models.Quantization;

/// <summary>
/// What one quantized weight type costs in memory, stated by the type (so the memory estimator keeps no table
/// of its own): the bytes a matrix [out, in] is stored in, and the temporary bytes per weight while it is
/// dequantized for a matmul.
/// </summary>
public sealed record QuantizedWeightCost(Func<long, long, bool, long> StoredBytes, double DequantizationBytesPerWeight);
