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
    public void TokenizerJsonGetsAnHonestError()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("tokenizer.json"), "{}");
        var e = Assert.Throws<LoraShellException>(() => TokenizerLoader.Load(dir.File("tokenizer.json")));
        Assert.Equal("TokenizerJsonNotSupported", e.ErrorId);
    }
}
