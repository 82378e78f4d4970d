using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>
/// What the decoder reads of an encoded source: the backbone encoder's output, a side encoder's output
/// when a ladder side network runs beside it, and the source's padding mask (1 for tokens, 0 for padding).
/// </summary>
public sealed record T5Encoding(Tensor Backbone, Tensor? Side, Tensor? Mask);
