using System.Collections.Concurrent;
using System.Text.Json;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>The fixture file (parsed once) and the tokenizers (loaded once each).</summary>
internal static class Fixtures
{
    private static readonly Lazy<JsonDocument> s_doc = new(() => JsonDocument.Parse(File.ReadAllBytes(Paths.Fixtures)));
    private static readonly ConcurrentDictionary<string, Lazy<HuggingFaceTokenizer>> s_tokenizers = new();

    public static JsonElement Root => s_doc.Value.RootElement;

    public static HuggingFaceTokenizer Tokenizer(string key) =>
        s_tokenizers.GetOrAdd(key, k => new Lazy<HuggingFaceTokenizer>(() => HuggingFaceTokenizer.Load(Paths.TokenizerJson(k)))).Value;

    public static JsonElement Tokenizers => Root.GetProperty("tokenizers");

    public static JsonElement Case(string key, string caseId)
    {
        foreach (var c in Tokenizers.GetProperty(key).GetProperty("cases").EnumerateArray())
        {
            if (c.GetProperty("id").GetString() == caseId) return c;
        }
        throw new KeyNotFoundException($"{key}/{caseId}");
    }

    public static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    public static string[] Strings(JsonElement e) => e.EnumerateArray().Select(x => x.GetString()!).ToArray();

    public static (int, int)[] Pairs(JsonElement e) =>
        e.EnumerateArray().Select(x => (x[0].GetInt32(), x[1].GetInt32())).ToArray();

    /// <summary>Code-point offsets to UTF-16 offsets of <paramref name="text"/>.</summary>
    public static (int, int)[] ToUtf16((int, int)[] codePointOffsets, string text)
    {
        var map = new List<int>();
        for (int i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1) map.Add(i);
        map.Add(text.Length);
        return codePointOffsets.Select(o => (map[o.Item1], map[o.Item2])).ToArray();
    }
}
