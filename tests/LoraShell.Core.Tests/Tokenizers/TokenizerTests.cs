using System.Text;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Tests;

public class TokenizerTests
{
    static readonly Llama2cTokenizer Tok = Llama2cTokenizer.Load(SharedData.Tok512);

    [Theory]
    [InlineData("Once upon a time, there was a little girl named Lily.")]
    [InlineData("Café, naïve — 日本語 🙂\nnew line\ttab")]
    [InlineData("  two leading spaces")]
    public void DecodeInvertsEncode(string text)
    {
        var ids = Tok.Encode(text);
        Assert.Equal(text, Tok.Decode(ids));
    }

    [Fact]
    public void EncodingAddsDummyPrefixAndMerges()
    {
        var ids = Tok.Encode("Once upon a time");
        Assert.True(ids.Count < "Once upon a time".Length, $"{ids.Count} tokens: merges should shorten the sequence");
        // The dummy-prefix space is part of the first piece and dropped again after BOS.
        Assert.Equal("Once upon a time", Tok.Decode(ids));
        Assert.Equal(" Once", Tok.Decode(new[] { 0 }.Concat(ids)).Replace("<unk>", "")[..5]);
        Assert.Empty(Tok.Encode(""));
    }

    [Fact]
    public void CharactersOutsideTheVocabularyFallBackToBytes()
    {
        var ids = Tok.Encode("日");
        var utf8 = Encoding.UTF8.GetBytes("日");
        // ' ' then the three UTF-8 bytes as <0xNN> tokens (id = byte + 3); none of them merge.
        Assert.Equal(utf8.Select(b => b + 3), ids.Skip(ids.Count - 3));
    }

    [Fact]
    public void VocabularyMatchesTheModel()
    {
        Assert.Equal(512, Tok.VocabSize);
        Assert.Equal((1, 2), (Tok.BosId, Tok.EosId));
    }

    [Fact]
    public void TruncatedTokenizerFileIsRejected()
    {
        using var dir = new TempFolder();
        var bytes = File.ReadAllBytes(SharedData.Tok512);
        File.WriteAllBytes(dir.File("cut.bin"), bytes[..1001]);
        var e = Assert.Throws<LoraShellException>(() => Llama2cTokenizer.Load(dir.File("cut.bin")));
        Assert.Equal("InvalidTokenizer", e.ErrorId);
        Assert.Contains("cut off", e.Message + "");
    }

    [Fact]
    public void A_tokenizer_json_that_is_not_a_tokenizer_is_named_with_what_is_missing()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("tokenizer.json"), "{}");
        var e = Assert.Throws<LoraShellException>(() => TokenizerLoader.Load(dir.File("tokenizer.json")));
        Assert.Equal("UnsupportedTokenizer", e.ErrorId);
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("model", e.Message);
        File.WriteAllText(dir.File("tokenizer.json"), """{"version": "1.0", "model": {"type": "Unigram", "vocab": []}}""");
        e = Assert.Throws<LoraShellException>(() => TokenizerLoader.Load(dir.File("tokenizer.json")));
        Assert.Contains("Unigram", e.Message);
    }

    /// <summary>llama2.c's encode, transcribed literally (O(n²) rescans): the reference.</summary>
    static List<int> ReferenceEncode(string text)
    {
        string Key(int id) => Encoding.Latin1.GetString(Tok.Piece(id));
        var lookup = new Dictionary<string, int>();
        for (int i = 0; i < Tok.VocabSize; i++) lookup.TryAdd(Key(i), i);
        var ids = new List<int> { lookup[" "] };
        foreach (var rune in text.EnumerateRunes())
        {
            var bytes = Encoding.UTF8.GetBytes(rune.ToString());
            if (lookup.TryGetValue(Encoding.Latin1.GetString(bytes), out int id)) ids.Add(id);
            else ids.AddRange(bytes.Select(b => b + 3));
        }
        while (true)
        {
            float best = -1e10f; int at = -1, bestId = -1;
            for (int i = 0; i + 1 < ids.Count; i++)
                if (lookup.TryGetValue(Key(ids[i]) + Key(ids[i + 1]), out int id) && Tok.Score(id) > best) { best = Tok.Score(id); at = i; bestId = id; }
            if (at < 0) return ids;
            ids[at] = bestId;
            ids.RemoveAt(at + 1);
        }
    }

    [Fact]
    public void FastMergeEqualsLlama2cReferenceAlgorithm()
    {
        string shakespeare = File.ReadAllText(SharedData.TinyShakespeare);
        var random = new Random(5);
        var samples = new List<string> { File.ReadAllText(SharedData.Greedy200), "Café, naïve — 日本語 🙂 aaaa    bbbb\n\n\t" };
        for (int i = 0; i < 6; i++) samples.Add(shakespeare.Substring(random.Next(shakespeare.Length - 600), 600));
        foreach (var text in samples)
            Assert.Equal(ReferenceEncode(text), Tok.Encode(text));
    }

    [Fact]
    public void WholeCorpusRoundTrips()
    {
        // All of Tiny Shakespeare (1.1 MB) in one call; llama2.c's O(n²) rescans would not finish.
        string text = File.ReadAllText(SharedData.TinyShakespeare);
        var ids = Tok.Encode(text);
        Assert.True(ids.Count > 300_000, $"{ids.Count} tokens");
        Assert.Equal(text, Tok.Decode(ids));
    }
}
