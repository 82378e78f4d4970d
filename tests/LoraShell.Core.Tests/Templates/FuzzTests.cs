using LoraShell.Core.Templates;
using System.Text.Json;

namespace LoraShell.Core.Tests.Templates;

/// <summary>Replays fixtures/fuzz-cases.json: seeded random conversations through every real template.</summary>
public sealed class FuzzTests
{
    private static readonly Lazy<JsonDocument> Fuzz = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "fuzz-cases.json"))));

    public static IEnumerable<object[]> CaseIds() =>
        Fuzz.Value.RootElement.GetProperty("cases").EnumerateArray().Select(c => new object[] { c.GetProperty("id").GetString()! });

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void RandomConversationRendersLikeTransformers(string id) =>
        FixtureTests.AssertCase(Fuzz.Value.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("id").GetString() == id));
}
