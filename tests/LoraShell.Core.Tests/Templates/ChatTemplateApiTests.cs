using LoraShell.Core.Templates;
using System.Text.Json.Nodes;

namespace LoraShell.Core.Tests.Templates;

public sealed class ChatTemplateApiTests
{
    private static readonly string Qwen3 =
        JsonNode.Parse(File.ReadAllText(SharedData.Path_("tokenizers", "qwen3", "tokenizer_config.json")))!["chat_template"]!.GetValue<string>();

    [Fact]
    public void CreateContextMirrorsTransformersArguments()
    {
        var messages = new object?[]
        {
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Hi" },
        };
        var context = ChatTemplate.CreateContext(
            messages,
            addGenerationPrompt: true,
            specialTokens: new Dictionary<string, string?> { ["bos_token"] = null, ["eos_token"] = "<|im_end|>" },
            extra: new Dictionary<string, object?> { ["enable_thinking"] = false });

        Assert.True(context.ContainsKey("tools") && context["tools"] is null);
        Assert.True(context.ContainsKey("documents") && context["documents"] is null);
        Assert.False(context.ContainsKey("bos_token"));

        var template = ChatTemplate.Parse("{{ bos_token is defined }}|{{ tools is none }}|{{ eos_token }}|{{ enable_thinking }}|{{ messages[0].content }}");
        Assert.Equal("False|True|<|im_end|>|False|Hi", template.Render(context));
    }

    [Fact]
    public void RendersQwen3FromSharedTokenizerConfig()
    {
        if (Qwen3.Length == 0)
        {
            return; // shared/ is not present on this machine
        }

        var template = ChatTemplate.Parse(Qwen3);
        var context = ChatTemplate.CreateContext(
            [
                new Dictionary<string, object?> { ["role"] = "system", ["content"] = "Be brief." },
                new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Hi" },
            ],
            addGenerationPrompt: true,
            specialTokens: new Dictionary<string, string?> { ["eos_token"] = "<|im_end|>" },
            extra: new Dictionary<string, object?> { ["enable_thinking"] = false });
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            template.Render(context));
    }

    [Fact]
    public void StrftimeNowUsesTheInjectedClock()
    {
        var template = ChatTemplate.Parse("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %B %j %H:%M:%S %p %y %m %%') }}");
        var options = new ChatTemplateRenderOptions { Now = () => new DateTime(2024, 7, 5, 13, 4, 9) };
        Assert.Equal("05 Jul 2024|Friday July 187 13:04:09 PM 24 07 %", template.Render(new Dictionary<string, object?>(), options));
    }

    [Fact]
    public void ClrValuesAreConvertedLikePythonValues()
    {
        var template = ChatTemplate.Parse("{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e|tojson }}|{{ f }}");
        var context = new Dictionary<string, object?>
        {
            ["a"] = 3,
            ["b"] = 2.0,
            ["c"] = true,
            ["d"] = null,
            ["e"] = new Dictionary<string, object?> { ["z"] = 1, ["a"] = new List<object?> { "x", 1.5 } },
            ["f"] = JsonNode.Parse("{\"n\": 1.0, \"m\": [1, \"é\"]}"),
        };
        Assert.Equal("3|2.0|True|None|{\"z\": 1, \"a\": [\"x\", 1.5]}|{'n': 1.0, 'm': [1, 'é']}", template.Render(context));
    }

    [Fact]
    public void TemplatesCanBeRenderedRepeatedly()
    {
        var template = ChatTemplate.Parse("{% set ns = namespace(n=0) %}{% for i in items %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}");
        var context = new Dictionary<string, object?> { ["items"] = new[] { 1, 2, 3 } };
        Assert.Equal("6", template.Render(context));
        Assert.Equal("6", template.Render(context));
    }
}
