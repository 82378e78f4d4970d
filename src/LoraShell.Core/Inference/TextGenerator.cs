using System.Diagnostics;
using LoraShell.Core.Models;
using LoraShell.Core.Tokenizers;
using static TorchSharp.torch;

namespace LoraShell.Core.Inference;

/// <summary>
/// Autoregressive decoding with a KV cache: one prefill pass over BOS + prompt, then one position per
/// step. Greedy at temperature 0; otherwise temperature and top-p sampling from a seeded CPU generator,
/// so a seed reproduces the same text on any device.
/// </summary>
public static class TextGenerator
{
    /// <param name="side">a ladder side network beside the model, whose blocks keep their own KV cache</param>
    public static GenerationResult Generate(CausalLM model, ITextTokenizer tokenizer, GenerationOptions options, SideTuning.LadderSideNetwork? side = null,
        IProgress<int>? tokensDone = null, CancellationToken cancel = default)
    {
        options.Validate();
        var prompt = tokenizer.EncodeWithSpecialTokens(options.Prompt);
        if (prompt.Count == 0)
            throw LoraShellException.InvalidArgument("EmptyPrompt", $"The prompt encodes to no tokens and the tokenizer '{tokenizer.Source}' adds no BOS to start from; give a -Prompt.");
        var stopTokens = options.StopAtSpecialTokens ? tokenizer.StopIds : Array.Empty<int>();
        var clock = Stopwatch.StartNew();
        var (generated, stop) = GenerateTokens(model, prompt, options, stopTokens, tokensDone, cancel, side);
        clock.Stop();
        string completion = tokenizer.Decode(generated, skipSpecialTokens: true);
        string text = tokenizer.Decode(prompt.Concat(generated), skipSpecialTokens: true);
        return new GenerationResult(text, completion, prompt, generated, stop, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// A reply to a conversation: the messages rendered with the tokenizer's chat template and the
    /// generation prompt, tokenized as apply_chat_template(tokenize=True) does (no further special tokens),
    /// decoded until an end-of-turn or end-of-sequence id. The result's text is the reply.
    /// </summary>
    public static GenerationResult GenerateChat(CausalLM model, ITextTokenizer tokenizer, IReadOnlyList<ChatMessage> messages, GenerationOptions options,
        IReadOnlyDictionary<string, object?>? templateArguments = null, SideTuning.LadderSideNetwork? side = null,
        IProgress<int>? tokensDone = null, CancellationToken cancel = default)
    {
        options.Validate();
        var chat = tokenizer.Chat ?? throw LoraShellException.InvalidData("NoChatTemplate",
            $"The tokenizer '{tokenizer.Source}' has no chat template (tokenizer_config.json's chat_template or chat_template.jinja).", tokenizer.Source);
        var prompt = tokenizer.Encode(chat.Render(messages, addGenerationPrompt: true, templateArguments));
        var clock = Stopwatch.StartNew();
        var (generated, stop) = GenerateTokens(model, prompt, options, options.StopAtSpecialTokens ? tokenizer.StopIds : Array.Empty<int>(), tokensDone, cancel, side);
        string reply = tokenizer.Decode(generated, skipSpecialTokens: true);
        return new GenerationResult(reply, reply, prompt, generated, stop, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Token-level decoding: prefill <paramref name="prompt"/> (which includes BOS), then one token per
    /// step until MaxTokens, the context length, or a token in <paramref name="stopTokens"/>. With a ladder
    /// <paramref name="side"/> network, its blocks keep their own KV cache beside the backbone's.
    /// </summary>
    public static (List<int> Tokens, string StopReason) GenerateTokens(CausalLM model, IReadOnlyList<int> prompt,
        GenerationOptions options, IReadOnlyCollection<int> stopTokens, IProgress<int>? tokensDone = null, CancellationToken cancel = default,
        SideTuning.LadderSideNetwork? side = null)
    {
        options.Validate();
        int context = model.Config.MaxPositionEmbeddings;
        if (prompt.Count == 0)
            throw LoraShellException.InvalidArgument("EmptyPrompt", "The prompt must hold at least the BOS token.");
        if (prompt.Count >= context)
            throw LoraShellException.InvalidArgument("PromptTooLong", $"The prompt is {prompt.Count} tokens (with BOS); the model's context is {context}.", prompt.Count);

        using var generator = options.Seed is long seed ? new Generator((ulong)seed, CPU) : null;
        var generated = new List<int>();
        string stop = "MaxTokens";
        using (no_grad())
        using (var cache = model.NewCache())
        using (var sideCache = side?.NewCache())
        {
            IReadOnlyList<int> next = prompt;
            while (generated.Count < options.MaxTokens)
            {
                cancel.ThrowIfCancellationRequested();
                if (cache.Length + next.Count > context) { stop = "ContextFull"; break; }
                using var scope = NewDisposeScope();
                var ids = tensor(next.Select(i => (long)i).ToArray(), dtype: ScalarType.Int64, device: model.Device).unsqueeze(0);
                var all = side is null ? model.Forward(ids, cache) : side.Forward(model, ids, cache, sideCache!);
                var logits = all[0, -1].to(ScalarType.Float32).cpu();
                int token = Pick(logits, options, generator);
                if (stopTokens.Contains(token)) { stop = "EndOfText"; break; }
                generated.Add(token);
                tokensDone?.Report(generated.Count);
                next = new[] { token };
            }
        }
        return (generated, stop);
    }

    /// <summary>Chooses the next token from float32 CPU logits [vocab].</summary>
    public static int Pick(Tensor logits, GenerationOptions options, Generator? generator)
    {
        if (options.Temperature == 0) return (int)logits.argmax().item<long>();
        using var scope = NewDisposeScope();
        var scaled = logits / options.Temperature;
        if (options.TopK > 0 && options.TopK < scaled.shape[0])
        {
            // transformers' TopKLogitsWarper: everything below the K-th largest logit is out.
            var kth = scaled.topk(options.TopK).values[options.TopK - 1];
            scaled = scaled.masked_fill(scaled < kth, double.NegativeInfinity);
        }
        var probs = nn.functional.softmax(scaled, 0);
        if (options.TopP < 1)
        {
            var (sorted, order) = probs.sort(descending: true);
            var before = sorted.cumsum(0) - sorted; // mass of strictly more likely tokens
            sorted = sorted.masked_fill(before >= options.TopP, 0);
            probs = zeros_like(probs).scatter(0, order, sorted);
            probs = probs / probs.sum();
        }
        return (int)multinomial(probs, 1, false, generator).item<long>();
    }
}
