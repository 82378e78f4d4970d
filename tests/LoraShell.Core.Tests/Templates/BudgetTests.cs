using LoraShell.Core.Templates;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Tests.Templates;

/// <summary>
/// A chat template is code that comes with a downloaded model: rendering is bounded in work, size and
/// time, and a template past the bounds stops with a clear error instead of hanging or exhausting memory.
/// </summary>
public class BudgetTests
{
    static Dictionary<string, object?> NoVariables => new();

    [Theory]
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "statements and loop iterations")]
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "statements and loop iterations")]
    [InlineData("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", "characters")]
    [InlineData("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "characters")]
    public void ARunawayTemplateStopsWithABudgetError(string source, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source).Render(NoVariables));
        Assert.Equal(ChatTemplateErrorKind.Budget, e.Kind);
        Assert.Contains(what, e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"stopped after {clock.Elapsed.TotalSeconds:N1} s");
    }

    [Fact]
    public void ARealTemplateRendersWellInsideTheBudget()
    {
        // Qwen3's template over a long conversation: thousands of steps, far below the bound.
        var chat = ChatFormat.Read(SharedData.Path_("tokenizers", "qwen3"), System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(SharedData.Path_("tokenizers", "qwen3", "tokenizer_config.json")))!.AsObject())!;
        var messages = Enumerable.Range(0, 400).Select(i => new ChatMessage(i % 2 == 0 ? "user" : "assistant", $"message {i}")).ToList();
        Assert.Contains("message 399", chat.Render(messages, addGenerationPrompt: true));
    }

    [Fact]
    public void ThroughAModelsChatFormatTheErrorNamesTheTemplate()
    {
        var dir = new TempFolder();
        try
        {
            File.Copy(SharedData.Path_("tokenizers", "qwen3", "tokenizer.json"), dir.File("tokenizer.json"));
            File.WriteAllText(dir.File("tokenizer_config.json"), """{"chat_template": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"}""");
            var tokenizer = HuggingFaceTextTokenizer.Load(dir.Path);
            var e = Assert.Throws<LoraShellException>(() => tokenizer.Chat!.Render(new[] { new ChatMessage("user", "Hi") }, true));
            Assert.Equal("ChatTemplateTooExpensive", e.ErrorId);
            Assert.Contains("tokenizer_config.json", e.Message);
        }
        finally { dir.Dispose(); }
    }
}
