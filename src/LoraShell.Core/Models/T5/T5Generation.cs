using static TorchSharp.torch;

namespace LoraShell.Core.Models.T5;

/// <summary>Greedy decoding with T5: the encoder runs once; the decoder reuses its keys and values (or, to check them, recomputes everything each step).</summary>
public static class T5Generation
{
    /// <summary>The decoded tokens after decoder_start_token_id, up to and including eos or <paramref name="maxNewTokens"/>, and each step's logits [vocab].</summary>
    public static (List<long> Tokens, List<float[]> StepLogits) Greedy(T5ForConditionalGeneration model, long[] inputIds, int maxNewTokens, bool useCache = true)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var device = model.shared.weight!.device;
        var input = tensor(inputIds, device: device).unsqueeze(0);
        var encoded = model.Encode(input);
        var tokens = new List<long> { model.Config.DecoderStartTokenId };
        var steps = new List<float[]>();
        using var cache = useCache ? new T5DecoderCache(model.Config.NumDecoderLayers) : null;
        for (int step = 0; step < maxNewTokens; step++)
        {
            using var stepScope = NewDisposeScope();
            var decoderInput = useCache ? tensor(new[] { tokens[^1] }, device: device).unsqueeze(0) : tensor(tokens.ToArray(), device: device).unsqueeze(0);
            var logits = model.Decode(decoderInput, encoded, null, cache)[0, -1].to(ScalarType.Float32).cpu();
            steps.Add(logits.data<float>().ToArray());
            long next = logits.argmax().item<long>();
            tokens.Add(next);
            if (next == model.Config.EosTokenId) break;
        }
        return (tokens.Skip(1).ToList(), steps);
    }
}
