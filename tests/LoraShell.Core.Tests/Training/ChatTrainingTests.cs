using System.Text.Json;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Tests;

/// <summary>
/// Chat fine-tuning data with Qwen3's real tokenizer and chat template: which tokens carry loss, that the
/// others get no gradient, and what bad conversations are told.
/// </summary>
public class ChatTrainingTests
{
    static readonly Lazy<ITextTokenizer> Qwen3 = new(() => TokenizerLoader.Load(SharedData.Path_("tokenizers", "qwen3")));

    const string Conversation = """
        {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"}, {"role": "assistant", "content": "Rome, since 1871."}]}
        """;

    static TokenStream Tokenize(string line, ChatLoss loss = ChatLoss.AssistantTurns)
    {
        using var doc = JsonDocument.Parse(line);
        return ChatData.Tokenize(Qwen3.Value, ChatData.ReadMessages(doc.RootElement, "test.jsonl:1"), loss, "test.jsonl:1");
    }

    /// <summary>The predicted tokens, decoded run by run.</summary>
    static List<string> PredictedRuns(TokenStream s)
    {
        var runs = new List<string>();
        for (int i = 0; i < s.Length; i++)
        {
            if (!s.Predict[i]) continue;
            int j = i;
            while (j < s.Length && s.Predict[j]) j++;
            runs.Add(Qwen3.Value.Decode(s.Tokens[i..j]));
            i = j;
        }
        return runs;
    }

    [Fact]
    public void Only_the_assistant_replies_and_their_end_of_turn_carry_loss()
    {
        var stream = Tokenize(Conversation);
        // What transformers' apply_chat_template(tokenize=True) returns: the rendering, tokenized without added specials.
        var chat = Qwen3.Value.Chat!;
        using var doc = JsonDocument.Parse(Conversation);
        var messages = ChatData.ReadMessages(doc.RootElement, "x");
        Assert.Equal(Qwen3.Value.Encode(chat.Render(messages, addGenerationPrompt: false)), stream.Tokens);
        // Qwen3's template writes an empty think block into the last reply (after the last user turn): the
        // model produces it when it answers, so it is the assistant's to learn, as is each <|im_end|>.
        Assert.Equal(new[] { "Paris.<|im_end|>", "<think>\n\n</think>\n\nRome, since 1871.<|im_end|>" }, PredictedRuns(stream));
    }

    [Fact]
    public void All_tokens_loss_predicts_everything_but_the_first_token()
    {
        var stream = Tokenize(Conversation, ChatLoss.AllTokens);
        Assert.False(stream.Predict[0]);
        Assert.All(stream.Predict[1..], Assert.True);
    }

    [Fact]
    public void Masked_targets_get_no_gradient()
    {
        var stream = Tokenize(Conversation);
        var sampler = new BatchSampler(stream, stream.Length - 1, seed: 1);
        var (inputs, targets) = sampler.Batch(0, 1, CPU);
        var flat = targets.reshape(-1);
        var logits = randn(flat.shape[0], 64, requires_grad: true);
        // The targets are token ids; fold them into the small vocabulary of the random logits.
        var folded = where(flat.eq(BatchSampler.IgnoreIndex), flat, flat.remainder(64));
        nn.functional.cross_entropy(logits, folded, ignore_index: BatchSampler.IgnoreIndex).backward();
        var rowHasGradient = logits.grad!.abs().sum(1).gt(0);
        var predicted = flat.ne(BatchSampler.IgnoreIndex);
        Assert.True(rowHasGradient.eq(predicted).all().item<bool>());
        Assert.Equal(stream.PredictedCount, predicted.sum().item<long>()); // every assistant token is a target once
    }

    [Theory]
    [InlineData("""{"messages": []}""", "InvalidChatRecord", "is empty")]
    [InlineData("""{"messages": "hello"}""", "InvalidChatRecord", "should be a list")]
    [InlineData("""{"messages": [{"role": "user", "content": "hi"}]}""", "InvalidChatRecord", "no assistant message")]
    [InlineData("""{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}""", "UnknownChatRole", "role 'robot'")]
    [InlineData("""{"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}""", "InvalidChatRecord", "message 1 has no \"role\"")]
    [InlineData("""{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}""", "InvalidChatRecord", "\"content\" should be a string")]
    [InlineData("""{"messages": [{"role": "user", "contnet": "hi"}, {"role": "assistant", "content": "x"}]}""", "InvalidChatRecord", "message 1 has no \"content\" (its fields: role, contnet)")]
    [InlineData("""{"messages": [{"role": "user", "content": [{"type": "image", "image": "cat.png"}]}, {"role": "assistant", "content": "x"}]}""", "UnsupportedContentPart", "type 'image'")]
    [InlineData("""{"messages": [{"role": "user", "content": {"text": "hi"}}, {"role": "assistant", "content": "x"}]}""", "InvalidChatRecord", "list of {\"type\": \"text\"")]
    public void Bad_conversations_are_named(string line, string errorId, string expected)
    {
        var e = Assert.Throws<LoraShellException>(() => Tokenize(line));
        Assert.Equal(errorId, e.ErrorId);
        Assert.Contains("test.jsonl:1", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Text_parts_are_joined_and_a_tool_call_needs_no_content()
    {
        using var parts = JsonDocument.Parse("""{"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}]}, {"role": "assistant", "content": "Hi"}]}""");
        Assert.Equal("Hello, world", ChatData.ReadMessages(parts.RootElement, "x")[0].Content);
        using var tool = JsonDocument.Parse("""{"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": {}}}]}, {"role": "assistant", "content": "Sunny"}]}""");
        Assert.Equal("", ChatData.ReadMessages(tool.RootElement, "x")[1].Content);
    }

    [Fact]
    public void A_tokenizer_without_a_chat_template_is_refused_for_conversations()
    {
        var gpt2 = TokenizerLoader.Load(SharedData.Path_("tokenizers", "gpt2"));
        Assert.Null(gpt2.Chat);
        using var doc = JsonDocument.Parse(Conversation);
        var e = Assert.Throws<LoraShellException>(() => ChatData.Tokenize(gpt2, ChatData.ReadMessages(doc.RootElement, "x"), ChatLoss.AssistantTurns, "chat.jsonl:1"));
        Assert.Equal("NoChatTemplate", e.ErrorId);
    }

    [Fact]
    public void Conversations_longer_than_a_window_are_cut_and_counted()
    {
        using var dir = new TempFolder();
        string path = dir.File("chat.jsonl");
        string longReply = string.Join(" ", Enumerable.Repeat("word", 200));
        File.WriteAllLines(path, new[]
        {
            Conversation.Trim(),
            $$"""{"messages": [{"role": "user", "content": "Talk."}, {"role": "assistant", "content": "{{longReply}}"}]}""",
            """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}""",
            $$"""{"messages": [{"role": "user", "content": "{{longReply}}"}, {"role": "assistant", "content": "Done."}]}""",
        });
        var info = new List<string>();
        var warnings = new List<string>();
        var corpus = TokenCorpus.Load(new[] { path }, null, 0, Qwen3.Value, cacheFolder: null, sequenceLength: 64, log: new RunLog(info.Add, warnings.Add));
        Assert.Contains(warnings, l => l.Contains("2 of 4 conversations are longer than one training window (65 tokens)")
            && l.Contains("1 of them keep no assistant token at all"));
        // Each conversation of the training stream, cut to at most 65 tokens, then the next one.
        Assert.True(corpus.Train.Length <= 4 * 65);
        Assert.True(corpus.Train.PredictedCount > 0);
    }

    [Fact]
    public void Text_documents_are_tokenized_as_the_tokenizer_would_with_its_special_tokens()
    {
        // Qwen3 adds no BOS: a document is exactly its tokens; llama2.c puts BOS first.
        using var dir = new TempFolder();
        string path = dir.File("doc.jsonl");
        File.WriteAllLines(path, new[] { """{"text": "Once upon a time"}""" });
        var corpus = TokenCorpus.Load(new[] { path }, new[] { path }, 0, Qwen3.Value, cacheFolder: null);
        Assert.Equal(Qwen3.Value.EncodeWithSpecialTokens("Once upon a time"), corpus.Train.Tokens);
        Assert.Equal(Qwen3.Value.Encode("Once upon a time"), corpus.Train.Tokens);
        var stories = SharedData.Stories.Tokenizer!;
        var llama = TokenCorpus.Load(new[] { path }, new[] { path }, 0, stories, cacheFolder: null);
        Assert.Equal(new[] { stories.BosId!.Value }.Concat(stories.Encode("Once upon a time")), llama.Train.Tokens);
    }
}
