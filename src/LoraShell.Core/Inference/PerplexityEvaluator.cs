using LoraShell.Core.Models;
using LoraShell.Core.Tokenizers;
using static TorchSharp.torch;

namespace LoraShell.Core.Inference;

/// <summary>Mean token loss (natural log) and perplexity = exp(loss); <paramref name="Window"/> is the window length used.</summary>
public sealed record PerplexityResult(double Loss, double Perplexity, long Tokens, int Windows, int Window);

/// <summary>
/// The project's one loss definition: the sequence is what tokenizer(text) returns (its special tokens
/// included; llama2.c: [BOS] + encode(text)); the loss is the mean
/// cross-entropy of predicting tokens 2..n. Sequences longer than the context are cut into windows
/// that overlap by one token, so every token from the second on is predicted exactly once. A window
/// never reaches past the model's context (max_position_embeddings): a longer one asked for is cut to it,
/// and the result's Window says so.
/// </summary>
public static class PerplexityEvaluator
{
    /// <param name="logits">the whole model's logits (a side network's too); default the backbone's forward</param>
    public static PerplexityResult Evaluate(CausalLM model, ITextTokenizer tokenizer, string text, Func<Tensor, Tensor>? logits = null,
        int? windowLength = null, int batchSize = 8, IProgress<double>? progress = null, CancellationToken cancel = default)
    {
        var tokens = tokenizer.EncodeWithSpecialTokens(text);
        return EvaluateTokens(model, tokens, windowLength, batchSize, progress, cancel, logits);
    }

    public static PerplexityResult EvaluateTokens(CausalLM model, IReadOnlyList<int> tokens, int? windowLength = null, int batchSize = 8,
        IProgress<double>? progress = null, CancellationToken cancel = default, Func<Tensor, Tensor>? logits = null)
    {
        logits ??= model.forward;
        if (tokens.Count < 2)
            throw LoraShellException.InvalidArgument("TextTooShort", "The text encodes to fewer than two tokens; a loss needs at least one token to predict after the first.");
        int window = Math.Min(windowLength ?? model.Config.MaxPositionEmbeddings, model.Config.MaxPositionEmbeddings);
        if (window < 2) throw LoraShellException.InvalidArgument("InvalidWindow", $"Window length must be at least 2 (got {window}).");

        var starts = new List<int>();
        for (int s = 0; s < tokens.Count - 1; s += window - 1) starts.Add(s);

        double totalLoss = 0;
        long counted = 0;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            // Full-length windows go in batches; the shorter last window runs alone.
            var groups = starts.GroupBy(s => Math.Min(window, tokens.Count - s)).SelectMany(g => g.Chunk(batchSize).Select(c => (Length: g.Key, Starts: c)));
            int done = 0;
            foreach (var (length, batchStarts) in groups)
            {
                cancel.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var data = new long[batchStarts.Length * length];
                for (int b = 0; b < batchStarts.Length; b++)
                    for (int t = 0; t < length; t++) data[b * length + t] = tokens[batchStarts[b] + t];
                var ids = tensor(data, new long[] { batchStarts.Length, length }, device: model.Device);
                var output = logits(ids.narrow(1, 0, length - 1)).to(ScalarType.Float32);
                var loss = nn.functional.cross_entropy(output.reshape(-1, output.shape[^1]), ids.narrow(1, 1, length - 1).reshape(-1), reduction: nn.Reduction.Sum);
                totalLoss += loss.item<float>();
                counted += batchStarts.Length * (long)(length - 1);
                done += batchStarts.Length;
                progress?.Report((double)done / starts.Count);
            }
        }
        finally { if (wasTraining) model.train(); }
        double mean = totalLoss / counted;
        return new PerplexityResult(mean, Math.Exp(mean), counted, starts.Count, window);
    }
}
