using LoraShell.Core.Models.T5;
using LoraShell.Core.SideTuning;
using static TorchSharp.torch;

namespace LoraShell.Core.Inference;

/// <summary>
/// Decoding with T5: the encoder (and a side encoder) runs once; the decoder (and a side decoder) reuses its
/// keys and values, or, to check them, recomputes every step.
/// </summary>
public static class T5Generation
{
    /// <summary>Greedy decoding: the tokens after decoder_start_token_id, up to and including eos or <paramref name="maxNewTokens"/>, and each step's logits [vocab].</summary>
    public static (List<long> Tokens, List<float[]> StepLogits) Greedy(T5ForConditionalGeneration model, long[] inputIds, int maxNewTokens, bool useCache = true)
    {
        var steps = new List<float[]>();
        var tokens = Decode(new EncoderDecoderPass(model), inputIds, maxNewTokens, logits =>
        {
            steps.Add(logits.data<float>().ToArray());
            return logits.argmax().item<long>();
        }, new[] { (long)model.Config.EosTokenId }, useCache);
        return (tokens, steps);
    }

    /// <summary>
    /// Decodes from decoder_start_token_id: <paramref name="pick"/> chooses each token from the step's float32 CPU
    /// logits [vocab]; decoding ends after a token in <paramref name="stopIds"/> (kept) or <paramref name="maxNewTokens"/>.
    /// </summary>
    public static List<long> Decode(EncoderDecoderPass pass, long[] inputIds, int maxNewTokens, Func<Tensor, long> pick, IReadOnlyCollection<long> stopIds,
        bool useCache = true, IProgress<int>? tokensDone = null, CancellationToken cancel = default)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var encoding = pass.Encode(tensor(inputIds, device: pass.Device).unsqueeze(0));
        var tokens = new List<long> { pass.Model.Config.DecoderStartTokenId };
        using var caches = useCache ? pass.NewCaches() : null;
        for (int step = 0; step < maxNewTokens; step++)
        {
            cancel.ThrowIfCancellationRequested();
            using var stepScope = NewDisposeScope();
            var decoderInput = useCache ? tensor(new[] { tokens[^1] }, device: pass.Device).unsqueeze(0) : tensor(tokens.ToArray(), device: pass.Device).unsqueeze(0);
            long next = pick(pass.Logits(decoderInput, encoding, caches)[0, -1].to(ScalarType.Float32).cpu());
            tokens.Add(next);
            tokensDone?.Report(tokens.Count - 1);
            if (stopIds.Contains(next)) break;
        }
        return tokens.Skip(1).ToList();
    }
}
