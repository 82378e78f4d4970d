using LoraShell.Core.SideTuning;
using LoraShell.Core.Tokenizers;
using static TorchSharp.torch;

namespace LoraShell.Core.Inference;

/// <summary>
/// How likely an encoder-decoder makes a target given an input: the mean cross-entropy of the target's
/// tokens and EOS (tokenized as transformers' T5 tokenizer does, <c>tokenizer(text_target=…)</c>), read by
/// the decoder behind decoder_start_token_id over the encoded input, as the loss T5ForConditionalGeneration
/// returns for those labels. One window: T5's relative positions have no fixed end.
/// </summary>
public static class TextToTextScorer
{
    public static PerplexityResult Score(EncoderDecoderPass pass, ITextTokenizer tokenizer, string input, string target)
    {
        int eos = pass.Model.Config.EosTokenId;
        var source = TextToTextEncoding.Source(tokenizer, input, eos);
        var labels = TextToTextEncoding.Target(tokenizer, target, eos);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var loss = pass.TargetLoss(pass.Encode(tensor(source, device: pass.Device).unsqueeze(0)), tensor(labels, device: pass.Device).unsqueeze(0)).item<float>();
        return new PerplexityResult(loss, Math.Exp(loss), labels.Length, 1, labels.Length);
    }
}
