using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;
using RustTokenizer = Tokenizers.DotNet.Tokenizer;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>
/// Every code point of planes 0-3 and 14, one at a time in a neutral context, through each Unicode-dependent piece
/// (normalization forms, lowercase, the character predicates of the pre-tokenizers, Oniguruma categories), compared
/// with the Rust crate. Code points are batched; a batch that differs is bisected down to the code points.
/// </summary>
public class CodePointSweepTests(ITestOutputHelper output)
{
    private static readonly Dictionary<string, (HuggingFaceTokenizer Mine, RustTokenizer Oracle)> s_cache = new();

    private static JsonObject T(string type, params (string Key, JsonNode? Value)[] fields)
    {
        var o = new JsonObject { ["type"] = type };
        foreach (var (k, v) in fields) o[k] = v;
        return o;
    }

    /// <summary>llama3 (byte-level, every character representable) with a normalizer and pre-tokenizers in front of ByteLevel.</summary>
    private static (HuggingFaceTokenizer Mine, RustTokenizer Oracle) Variant(string name, JsonNode? normalizer, params JsonNode[] preTokenizers)
    {
        lock (s_cache)
        {
            if (s_cache.TryGetValue(name, out var pair)) return pair;
            var node = JsonNode.Parse(File.ReadAllText(Paths.TokenizerJson("llama3")))!;
            node["normalizer"] = normalizer;
            var pre = new JsonArray(preTokenizers.Select(p => (JsonNode?)p.DeepClone()).ToArray());
            pre.Add(T("ByteLevel", ("add_prefix_space", false), ("trim_offsets", false), ("use_regex", false)));
            node["pre_tokenizer"] = T("Sequence", ("pretokenizers", pre));
            node["post_processor"] = null;
            node["decoder"] = T("ByteLevel", ("add_prefix_space", false), ("trim_offsets", false), ("use_regex", false));
            var path = Path.Combine(Paths.Scratch, $"sweep_{name}.json");
            File.WriteAllText(path, node.ToJsonString());
            return s_cache[name] = (HuggingFaceTokenizer.Load(path), new RustTokenizer(vocabPath: path));
        }
    }

    private static IEnumerable<int> CodePoints()
    {
        foreach (int plane in new[] { 0, 1, 2, 3, 14 })
        {
            for (int cp = plane << 16; cp < (plane + 1) << 16; cp++)
            {
                if (cp is >= 0xD800 and <= 0xDFFF || cp == 0) continue;
                yield return cp;
            }
        }
    }

    /// <summary>Runs the sweep and returns the code points whose result differs.</summary>
    private List<int> Sweep(HuggingFaceTokenizer mine, RustTokenizer oracle, Func<int, string> context, string separator, bool compareText)
    {
        var all = CodePoints().ToArray();
        var bad = new List<int>();
        const int Batch = 2048;
        for (int i = 0; i < all.Length; i += Batch) Check(all.AsSpan(i, Math.Min(Batch, all.Length - i)).ToArray());
        return bad;

        void Check(int[] cps)
        {
            string text = string.Join(separator, cps.Select(context));
            int[] ours = mine.EncodeIds(text);
            uint[] theirs = oracle.Encode(text);
            bool same = compareText
                ? mine.Decode(ours) == oracle.Decode(theirs)
                : ours.Length == theirs.Length && ours.Zip(theirs).All(p => p.First == (int)p.Second);
            if (same) return;
            if (cps.Length == 1)
            {
                bad.Add(cps[0]);
                return;
            }
            Check(cps[..(cps.Length / 2)]);
            Check(cps[(cps.Length / 2)..]);
        }
    }

    private void Report(string what, List<int> bad)
    {
        output.WriteLine($"{what}: {bad.Count} code points differ{(bad.Count > 0 ? ": " + string.Join(" ", bad.Take(40).Select(c => $"U+{c:X4}")) : "")}");
        Assert.True(bad.Count == 0, $"{what}: {bad.Count} code points differ: {string.Join(" ", bad.Take(40).Select(c => $"U+{c:X4}"))}");
    }

    public static IEnumerable<object[]> Forms() => new[] { "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents" }.Select(f => new object[] { f });

    [Theory]
    [MemberData(nameof(Forms))]
    public void Normalizer_matches_oracle_on_every_code_point(string form)
    {
        var normalizer = form == "StripAccents"
            ? T("Sequence", ("normalizers", new JsonArray(T("NFD"), T("StripAccents"))))
            : T(form);
        var (mine, oracle) = Variant($"norm_{form}", normalizer);
        // "x" before: a starter that composes with nothing, so each code point is normalized on its own.
        Report(form, Sweep(mine, oracle, cp => "x" + char.ConvertFromUtf32(cp), " ", compareText: true));
    }

    public static IEnumerable<object[]> Splitters() => new[] { "Punctuation", "BertPreTokenizer", "Whitespace", "Digits", "WhitespaceSplit", "Metaspace" }.Select(f => new object[] { f });

    [Theory]
    [MemberData(nameof(Splitters))]
    public void Pre_tokenizer_predicate_matches_oracle_on_every_code_point(string kind)
    {
        JsonNode splitter = kind switch
        {
            "Punctuation" => T("Punctuation", ("behavior", "Isolated")),
            "Digits" => T("Digits", ("individual_digits", true)),
            "Metaspace" => T("Metaspace", ("replacement", "\u2581"), ("prepend_scheme", "never"), ("split", true)),
            _ => T(kind),
        };
        // Pieces "a<c>a" separated by newlines (WhitespaceSplit removes them); the ids show whether <c> split the piece.
        var (mine, oracle) = Variant($"pre_{kind}", null, T("WhitespaceSplit"), splitter);
        Report(kind, Sweep(mine, oracle, cp => "a" + char.ConvertFromUtf32(cp) + "a", "\n", compareText: false));
    }

    [Fact]
    public void Qwen3_regex_categories_match_oracle_on_every_code_point()
    {
        var mine = Fixtures.Tokenizer("qwen3");
        var oracle = new RustTokenizer(vocabPath: Paths.TokenizerJson("qwen3"));
        // Letters, digits and the rest are split differently by the Split regex, so contexts "a<c>a" and "1<c>1" reveal
        // how Oniguruma classifies <c>; NFC runs first, as in the real pipeline.
        Report("qwen3 letters", Sweep(mine, oracle, cp => "a" + char.ConvertFromUtf32(cp) + "a", " ", compareText: false));
        Report("qwen3 digits", Sweep(mine, oracle, cp => "1" + char.ConvertFromUtf32(cp) + "1", " ", compareText: false));
    }
}
