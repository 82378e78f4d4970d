using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;
using RustTokenizer = Tokenizers.DotNet.Tokenizer;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>
/// BPE options no real file here uses — continuing_subword_prefix, end_of_word_suffix, unk without fusing, byte
/// fallback combined with a prefix — on small generated vocabularies, against the Rust crate.
/// </summary>
public class SyntheticBpeTests(ITestOutputHelper output)
{
    /// <summary>Builds a random but valid BPE: every merge's parts and result are in the vocab.</summary>
    private static string Build(string name, string? prefix, string? suffix, bool byteFallback, bool fuseUnk, JsonNode? decoder)
    {
        var rng = new Random(name.Length * 31 + 7);
        var vocab = new List<string> { "[UNK]" };
        string p = prefix ?? string.Empty, s = suffix ?? string.Empty;
        foreach (char c in "abcde")
        {
            vocab.Add(c.ToString());
            if (p.Length > 0) vocab.Add(p + c);
            if (s.Length > 0) vocab.Add(c + s);
            if (p.Length > 0 && s.Length > 0) vocab.Add(p + c + s);
        }
        if (byteFallback)
        {
            for (int b = 0; b < 256; b++) vocab.Add($"<0x{b:X2}>");
        }
        var merges = new List<(string, string)>();
        var known = new HashSet<string>(vocab);
        var words = vocab.Where(v => v != "[UNK]" && !v.StartsWith("<0x", StringComparison.Ordinal)).ToList();
        for (int k = 0; k < 300; k++)
        {
            string a = words[rng.Next(words.Count)];
            string b = words[rng.Next(words.Count)];
            if (s.Length > 0 && a.EndsWith(s, StringComparison.Ordinal)) continue;   // nothing follows an end-of-word piece
            if (p.Length > 0 && !b.StartsWith(p, StringComparison.Ordinal)) continue; // the right part continues a word
            string merged = a + b[Math.Min(p.Length, b.Length)..];
            if (merged.Length > 12 || merges.Contains((a, b))) continue;
            merges.Add((a, b));
            if (known.Add(merged))
            {
                vocab.Add(merged);
                words.Add(merged);
            }
        }
        var vocabJson = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) vocabJson[vocab[i]] = i;
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = 0, ["content"] = "[UNK]", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "WhitespaceSplit" },
            ["post_processor"] = null,
            ["decoder"] = decoder,
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = "[UNK]",
                ["continuing_subword_prefix"] = prefix,
                ["end_of_word_suffix"] = suffix,
                ["fuse_unk"] = fuseUnk,
                ["byte_fallback"] = byteFallback,
                ["ignore_merges"] = false,
                ["vocab"] = vocabJson,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode?)new JsonArray(m.Item1, m.Item2)).ToArray()),
            },
        };
        var path = Path.Combine(Paths.Scratch, $"synthetic_{name}.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    public static IEnumerable<object?[]> Cases() =>
    [
        ["prefix", "##", null, false, false],
        ["suffix", null, "</w>", false, true],
        ["prefix_suffix", "##", "</w>", false, false],
        ["prefix_bytefallback", "##", null, true, false],
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Synthetic_bpe_matches_oracle(string name, string? prefix, string? suffix, bool byteFallback, bool fuseUnk)
    {
        JsonNode? decoder = suffix is not null
            ? new JsonObject { ["type"] = "BPEDecoder", ["suffix"] = suffix }
            : new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = false };
        var path = Build(name, prefix, suffix, byteFallback, fuseUnk, decoder);
        var mine = HuggingFaceTokenizer.Load(path);
        var oracle = new RustTokenizer(vocabPath: path);
        var rng = new Random(3);
        int n = 0;
        for (int i = 0; i < 1500; i++)
        {
            var sb = new StringBuilder();
            for (int w = rng.Next(1, 6); w > 0; w--)
            {
                for (int c = rng.Next(1, 9); c > 0; c--) sb.Append("abcdeabcdeé f"[rng.Next(13)]);
                sb.Append(' ');
            }
            string text = sb.ToString();
            var theirs = oracle.Encode(text);
            Assert.Equal(theirs.Select(x => (int)x), mine.EncodeIds(text));
            Assert.Equal(oracle.Decode(theirs), mine.Decode(theirs.Select(x => (int)x).ToArray(), skipSpecialTokens: true));
            n++;
        }
        output.WriteLine($"{name}: {n} texts identical");
    }
}
