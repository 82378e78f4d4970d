using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// A wrapper of the token embedding that replaces some of its rows (PEFT's trainable tokens). With tied
/// embeddings the output head is that same weight, so the head must see the replaced rows too: it gets the
/// logits computed with the base weight and returns them with those rows' columns recomputed.
/// </summary>
public interface ITiedHeadRows
{
    Tensor OnTiedHead(Tensor hidden, Tensor logits);
}
