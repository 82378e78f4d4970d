using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Hugging Face's LlamaForSequenceClassification head: a bias-free Linear <c>score</c> from the final
/// hidden state of each sequence's last real token to one logit per class. With right padding and causal
/// attention that token never sees the padding, so padded batches give each sequence's own answer.
/// </summary>
public sealed class ClassificationHead : nn.Module<Tensor, Tensor, Tensor>
{
    public Linear score;

    public ClassificationHead(int hiddenSize, int labels) : base(nameof(ClassificationHead))
    {
        score = nn.Linear(hiddenSize, labels, hasBias: false);
        using (no_grad()) nn.init.normal_(score.weight!, 0, 0.02); // HF initializer_range
        RegisterComponents();
    }

    public int Labels => (int)score.weight!.shape[0];

    /// <summary>Class logits [batch, labels] from hidden states [batch, seq, hidden] and sequence lengths [batch].</summary>
    public override Tensor forward(Tensor hidden, Tensor lengths)
    {
        var rows = arange(hidden.shape[0], device: hidden.device);
        var last = hidden[rows, (lengths - 1).to(hidden.device)];
        return score.call(last.to(score.weight!.dtype));
    }
}
