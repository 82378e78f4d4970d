using System.Text.Json;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>Every field of every fixture case (6 tokenizers x 87 texts), against the Rust crate's output.</summary>
public class FixtureTests
{
    public static IEnumerable<object[]> EncodeCases()
    {
        foreach (var key in Paths.TokenizerKeys)
        {
            foreach (var c in Fixtures.Tokenizers.GetProperty(key).GetProperty("cases").EnumerateArray())
            {
                yield return [key, c.GetProperty("id").GetString()!];
            }
        }
    }

    [Theory]
    [MemberData(nameof(EncodeCases))]
    public void Encode_matches_fixture(string key, string caseId)
    {
        var c = Fixtures.Case(key, caseId);
        var tok = Fixtures.Tokenizer(key);
        string text = c.GetProperty("text").GetString()!;

        var enc = tok.Encode(text, addSpecialTokens: true);
        Assert.Equal(Fixtures.Ints(c.GetProperty("ids")), enc.Ids);
        Assert.Equal(Fixtures.Strings(c.GetProperty("tokens")), enc.Tokens);
        Assert.Equal(Fixtures.Pairs(c.GetProperty("offsets_utf16")), enc.Offsets.Select(o => (o.Start, o.End)).ToArray());
        Assert.Equal(Fixtures.Ints(c.GetProperty("special_tokens_mask")), enc.SpecialTokensMask);
        Assert.Equal(Fixtures.Ints(c.GetProperty("ids")), tok.EncodeIds(text, addSpecialTokens: true));

        var plain = tok.Encode(text, addSpecialTokens: false);
        Assert.Equal(Fixtures.Ints(c.GetProperty("ids_no_special")), plain.Ids);
        Assert.Equal(Fixtures.Strings(c.GetProperty("tokens_no_special")), plain.Tokens);
        Assert.Equal(Fixtures.ToUtf16(Fixtures.Pairs(c.GetProperty("offsets_no_special")), text), plain.Offsets.Select(o => (o.Start, o.End)).ToArray());
        Assert.Equal(Fixtures.Ints(c.GetProperty("ids_no_special")), tok.EncodeIds(text, addSpecialTokens: false));
    }

    [Theory]
    [MemberData(nameof(EncodeCases))]
    public void Decode_matches_fixture(string key, string caseId)
    {
        var c = Fixtures.Case(key, caseId);
        var tok = Fixtures.Tokenizer(key);
        var ids = Fixtures.Ints(c.GetProperty("ids"));
        Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids));
        Assert.Equal(c.GetProperty("decoded_skip_special").GetString(), tok.Decode(ids, skipSpecialTokens: true));
    }

    public static IEnumerable<object[]> DecodeCases()
    {
        foreach (var key in Paths.TokenizerKeys)
        {
            int i = 0;
            foreach (var _ in Fixtures.Tokenizers.GetProperty(key).GetProperty("decode_cases").EnumerateArray())
            {
                yield return [key, i++];
            }
        }
    }

    [Theory]
    [MemberData(nameof(DecodeCases))]
    public void Prefix_decode_matches_fixture(string key, int index)
    {
        var c = Fixtures.Tokenizers.GetProperty(key).GetProperty("decode_cases")[index];
        var tok = Fixtures.Tokenizer(key);
        Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(Fixtures.Ints(c.GetProperty("ids"))));
    }

    public static IEnumerable<object[]> MetaspaceDecoderCases()
    {
        int n = Fixtures.Root.GetProperty("metaspace_decoder_cases").GetProperty("cases").GetArrayLength();
        for (int i = 0; i < n; i++) yield return [i];
    }

    [Theory]
    [MemberData(nameof(MetaspaceDecoderCases))]
    public void Metaspace_decoder_matches_fixture(int index)
    {
        var c = Fixtures.Root.GetProperty("metaspace_decoder_cases").GetProperty("cases")[index];
        string scheme = c.GetProperty("prepend_scheme").GetString()!;
        var tok = MetaspaceVariant(scheme);
        var ids = Fixtures.Ints(c.GetProperty("ids"));
        Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids, c.GetProperty("skip_special_tokens").GetBoolean()));
    }

    private static readonly Dictionary<string, HuggingFaceTokenizer> s_variants = new();

    /// <summary>The llama2 file with its decoder replaced by Metaspace{scheme, split: true}, as the fixtures were made.</summary>
    private static HuggingFaceTokenizer MetaspaceVariant(string scheme)
    {
        lock (s_variants)
        {
            if (s_variants.TryGetValue(scheme, out var t)) return t;
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Paths.TokenizerJson("llama2")))!;
            node["decoder"] = new System.Text.Json.Nodes.JsonObject
            {
                ["type"] = "Metaspace",
                ["replacement"] = "\u2581",
                ["prepend_scheme"] = scheme,
                ["split"] = true,
            };
            var path = Path.Combine(Paths.Scratch, $"llama2_metaspace_decoder_{scheme}.json");
            File.WriteAllText(path, node.ToJsonString());
            return s_variants[scheme] = HuggingFaceTokenizer.Load(path);
        }
    }
}
