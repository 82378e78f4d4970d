using LoraShell.Core.Tokenizers.HuggingFace.Text;
using RustTokenizer = Tokenizers.DotNet.Tokenizer;

using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>Targeted behaviours: code-point exact regexes, astral characters end to end, offsets, thread safety.</summary>
public class BehaviourTests
{
    private static List<(int, int)> Matches(string pattern, string input)
    {
        var list = new List<(int, int)>();
        CodePointRegex.Create(pattern, "test", "test").Matches(input, list);
        return list;
    }

    [Fact]
    public void Regex_classifies_astral_letters_digits_and_emoji_by_code_point()
    {
        // U+1D518 (MATHEMATICAL FRAKTUR CAPITAL U) is a letter: \p{L}+ must take it with its neighbours.
        Assert.Equal([(0, 4)], Matches(@"\p{L}+", "a\U0001D518b"));
        // U+1D7D9 (MATHEMATICAL DOUBLE-STRUCK DIGIT ONE) is a digit; one \p{N} is one code point (two UTF-16 units).
        Assert.Equal([(0, 2), (2, 4), (4, 5)], Matches(@"\p{N}", "\U0001D7D9\U0001D7DA3"));
        // Emoji are neither letters nor digits nor spaces.
        Assert.Equal([(0, 1), (1, 5), (5, 6)], Matches(@"\p{L}+|[^\s\p{L}\p{N}]+", "a\U0001F600\U0001F44Db"));
        // '.' matches one code point.
        Assert.Equal([(0, 2), (2, 3)], Matches(".", "\U00020000x"));
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    [InlineData("gpt2")]
    public void Astral_characters_tokenize_like_the_crate(string key)
    {
        var oracle = new RustTokenizer(vocabPath: Paths.TokenizerJson(key));
        var tok = Fixtures.Tokenizer(key);
        foreach (var text in new[] { "a\U0001D518b", "x\U0001D7D9\U0001D7DA\U0001D7DBy 12\U0001D7D93", "\U0001F600\U0001F600 a\U0001F44D\U0001F3FDb",
                     "\U00010400\U00010428 test", "\U0001F130\U0001F131 \U00020000\U00020001", "'\U0001D518s 's\U0001D518" })
        {
            Assert.Equal(oracle.Encode(text).Select(i => (int)i), tok.EncodeIds(text));
        }
    }

    [Fact]
    public void Offsets_of_byte_level_tokens_cover_whole_characters()
    {
        var enc = Fixtures.Tokenizer("qwen3").Encode("a\U0001F600b");
        string text = "a\U0001F600b";
        foreach (var (start, end) in enc.Offsets)
        {
            Assert.False(start > 0 && char.IsLowSurrogate(text[start]), "offset starts inside a surrogate pair");
            Assert.False(end < text.Length && char.IsLowSurrogate(text[end]), "offset ends inside a surrogate pair");
        }
    }

    [Fact]
    public void Nfc_composition_keeps_the_first_characters_span()
    {
        // e + U+0301 composes to é; the crate aligns é with the 'e' only.
        var enc = Fixtures.Tokenizer("qwen3").Encode("e\u0301");
        Assert.Equal(["Ã©"], enc.Tokens);
        Assert.Equal([(0, 1)], enc.Offsets);
    }

    [Fact]
    public void Encoding_is_thread_safe()
    {
        var tok = Fixtures.Tokenizer("llama3");
        var texts = RandomText.Generate(99, 400, tok.AddedTokens.Select(t => t.Content).Take(40).ToList());
        var expected = texts.Select(t => tok.EncodeIds(t)).ToArray();
        Parallel.For(0, texts.Count * 4, i =>
        {
            int k = i % texts.Count;
            Assert.Equal(expected[k], tok.EncodeIds(texts[k]));
            Assert.Equal(expected[k], tok.Encode(texts[k]).Ids);
        });
    }

    [Fact]
    public void Decode_of_arbitrary_id_sequences_matches_the_crate()
    {
        // Random ids (not produced by encoding) exercise invalid UTF-8 in ByteLevel and ByteFallback decoding.
        var rng = new Random(5);
        foreach (var key in new[] { "qwen3", "llama2", "llama3" })
        {
            var tok = Fixtures.Tokenizer(key);
            var oracle = new RustTokenizer(vocabPath: Paths.TokenizerJson(key));
            for (int n = 0; n < 300; n++)
            {
                var ids = new uint[rng.Next(1, 12)];
                for (int i = 0; i < ids.Length; i++)
                {
                    // Mostly low ids (bytes / byte-fallback tokens), sometimes anything, sometimes an added token.
                    ids[i] = (uint)(rng.Next(3) switch { 0 => rng.Next(0, 300), 1 => rng.Next(0, tok.VocabSize), _ => tok.AddedTokens[rng.Next(tok.AddedTokens.Count)].Id });
                }
                Assert.Equal(oracle.Decode(ids), tok.Decode(ids.Select(i => (int)i).ToArray(), skipSpecialTokens: true));
            }
        }
    }
}
