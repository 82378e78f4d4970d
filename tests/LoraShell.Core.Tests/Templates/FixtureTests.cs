using LoraShell.Core.Templates;
using System.Text.Json;

namespace LoraShell.Core.Tests.Templates;

/// <summary>
/// Renders every case of fixtures/chat-templates.json (real chat templates and construct probes) and
/// compares with transformers' result (Python Jinja2), character for character.
/// </summary>
public sealed class FixtureTests
{
    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates.json"))));

    private static readonly Dictionary<string, ChatTemplate> Parsed = new();

    public static IEnumerable<object[]> CaseIds() =>
        Fixture.Value.RootElement.GetProperty("cases").EnumerateArray().Select(c => new object[] { c.GetProperty("id").GetString()! });

    private static JsonElement Case(string id) =>
        Fixture.Value.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("id").GetString() == id);

    internal static ChatTemplate TemplateFor(JsonElement c)
    {
        string text = c.TryGetProperty("templateText", out var inline) && inline.ValueKind == JsonValueKind.String
            ? inline.GetString()!
            : Fixture.Value.RootElement.GetProperty("templates").GetProperty(c.GetProperty("template").GetString()!).GetProperty("text").GetString()!;
        lock (Parsed)
        {
            if (!Parsed.TryGetValue(text, out var template))
            {
                template = ChatTemplate.Parse(text);
                Parsed[text] = template;
            }

            return template;
        }
    }

    internal static Dictionary<string, object?> Context(JsonElement c)
    {
        var context = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var property in c.GetProperty("context").EnumerateObject())
        {
            context[property.Name] = property.Value.Clone();
        }

        return context;
    }

    [Fact]
    public void FixtureCoversEveryTargetTemplate()
    {
        var templates = Fixture.Value.RootElement.GetProperty("templates").EnumerateObject().Select(t => t.Name).ToHashSet();
        foreach (string name in new[] { "qwen3", "llama3", "llama3.1", "mistral-v0.1", "mistral-v0.3", "zephyr", "smollm2", "chatml", "phi3-mini" })
        {
            Assert.Contains(name, templates);
        }

        Assert.True(CaseIds().Count() > 150);
    }

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void RendersLikeTransformers(string id) => AssertCase(Case(id));

    /// <summary>Exact output for rendering cases; for error cases the same kind of failure and raise_exception text.</summary>
    internal static void AssertCase(JsonElement c)
    {
        string? expected = c.GetProperty("expected").ValueKind == JsonValueKind.String ? c.GetProperty("expected").GetString() : null;
        var template = TemplateFor(c);
        var context = Context(c);
        if (expected is not null)
        {
            Assert.Equal(expected, template.Render(context));
            return;
        }

        string errorType = c.GetProperty("expectedErrorType").GetString()!;
        var error = Assert.Throws<ChatTemplateException>(() => template.Render(context));
        if (errorType == "raised")
        {
            Assert.Equal(ChatTemplateErrorKind.Raised, error.Kind);
            Assert.Equal(c.GetProperty("expectedError").GetString(), error.Detail);
        }
        else
        {
            Assert.Equal(ChatTemplateErrorKind.Runtime, error.Kind);
        }

        Assert.True(error.Line > 0, "runtime errors carry a template position");
    }
}
