using System.Text;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Tests;

/// <summary>
/// T5's spiece.model (SentencePiece Unigram): a small model written here as SentencePiece's protobuf, with
/// scores chosen so the best segmentation is clear by hand; tokenizer(text) is the pieces of highest total
/// score, then EOS (T5Tokenizer), no BOS; an unknown character is &lt;unk&gt;. Beside a Unigram tokenizer.json
/// (which LoraShell does not read) the spiece.model is the one found.
/// </summary>
public class SpieceModelTests
{
    static readonly (string Piece, float Score, int Type)[] Pieces =
    {
        ("<pad>", 0, 3), ("</s>", 0, 3), ("<unk>", 0, 2), ("\u2581", -2, 1), ("\u2581the", -3, 1), ("\u2581cat", -4, 1), ("s", -3, 1), ("\u2581sat", -5, 1),
        ("\u2581ca", -6, 1), ("t", -4, 1), ("a", -4, 1), ("c", -4, 1), ("h", -4, 1), ("e", -4, 1), ("\u2581t", -5, 1), ("\u2581s", -5, 1),
    };

    /// <summary>ModelProto: pieces (1), trainer_spec (2: model_type 3, vocab_size 4, unk/bos/eos/pad ids 40-43), normalizer_spec (3).</summary>
    internal static byte[] WriteSpiece(int modelType = 1)
    {
        var model = new MemoryStream();
        foreach (var (piece, score, type) in Pieces)
        {
            var p = new MemoryStream();
            Bytes(p, 1, Encoding.UTF8.GetBytes(piece));
            Key(p, 2, 5); p.Write(BitConverter.GetBytes(score));
            Key(p, 3, 0); Varint(p, (ulong)type);
            Bytes(model, 1, p.ToArray());
        }
        var trainer = new MemoryStream();
        foreach (var (field, value) in new[] { (3, (long)modelType), (4, Pieces.Length), (40, 2), (41, -1), (42, 1), (43, 0) })
        { Key(trainer, field, 0); Varint(trainer, (ulong)value); }
        Bytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        Bytes(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        foreach (int field in new[] { 3, 4, 5 }) { Key(normalizer, field, 0); Varint(normalizer, 1); } // dummy prefix, squeeze and escape whitespace
        Bytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    static void Key(Stream s, int field, int wire) => Varint(s, (ulong)(field << 3 | wire));
    static void Varint(Stream s, ulong v) { do { byte b = (byte)(v & 0x7F); v >>= 7; s.WriteByte(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0); }
    static void Bytes(Stream s, int field, byte[] data) { Key(s, field, 2); Varint(s, (ulong)data.Length); s.Write(data); }

    [Fact]
    public void Unigram_segments_by_the_highest_score_and_ends_with_eos_as_T5Tokenizer()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(dir.File("spiece.model"), WriteSpiece());
        var tokenizer = TokenizerLoader.Load(dir.File("spiece.model"));
        Assert.Equal(Pieces.Length, tokenizer.VocabSize);
        Assert.Null(tokenizer.BosId);
        Assert.Equal(1, tokenizer.EosId);
        // ▁the (-3) beats ▁t h e (-13); ▁cat s (-7) beats ▁ca t s (-13); ▁sat (-5) beats ▁s a t (-13).
        Assert.Equal(new[] { 4, 5, 6, 7 }, tokenizer.Encode("the cats sat"));
        Assert.Equal(new[] { 4, 5, 6, 7, 1 }, tokenizer.EncodeWithSpecialTokens("the cats sat"));
        Assert.Equal(new[] { 4, 3, 2 }, tokenizer.Encode("the x"));
        Assert.Equal("the cats sat", tokenizer.Decode(new[] { 4, 5, 6, 7, 1 }, skipSpecialTokens: true));
        var spans = tokenizer.Tokenize("the cats", addSpecialTokens: true);
        Assert.Equal(new[] { "\u2581the", "\u2581cat", "s", "</s>" }, spans.Select(t => t.Token));
        Assert.True(spans[^1].Special);
        // Text-to-text data keeps the tokenizer's own EOS (no second one) and appends it to a target.
        Assert.Equal(new long[] { 4, 5, 6, 1 }, TextToTextEncoding.Source(tokenizer, "the cats", 1));
        Assert.Equal(new long[] { 7, 1 }, TextToTextEncoding.Target(tokenizer, "sat", 1));
    }

    [Fact]
    public void A_bpe_model_file_keeps_llama_s_bos_first()
    {
        Assert.Equal(SentencePieceModelType.Bpe, SentencePieceModelType.Read(WriteSpiece(modelType: 2)));
        Assert.Equal(SentencePieceModelType.Unigram, SentencePieceModelType.Read(WriteSpiece(modelType: 1)));
        Assert.Equal(SentencePieceModelType.Unigram, SentencePieceModelType.Read(Array.Empty<byte>())); // SentencePiece's default
        var e = Assert.Throws<FormatException>(() => SentencePieceModelType.Read(new byte[] { 0x12, 0x50, 0x01 }));
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void Spiece_model_is_found_beside_a_t5_model_even_next_to_a_unigram_tokenizer_json()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(dir.File("spiece.model"), WriteSpiece());
        Assert.Equal(dir.File("spiece.model"), TokenizerLoader.FindBeside(dir.Path));
        File.WriteAllText(dir.File("tokenizer.json"), "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        Assert.Equal(dir.File("spiece.model"), TokenizerLoader.FindBeside(dir.Path));
        File.WriteAllText(dir.File("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
        Assert.Equal(dir.File("tokenizer.json"), TokenizerLoader.FindBeside(dir.Path));
        File.WriteAllBytes(dir.File("broken.model"), new byte[] { 0x12, 0x50, 0x01 });
        Assert.Equal("InvalidTokenizer", Assert.Throws<LoraShellException>(() => TokenizerLoader.Load(dir.File("broken.model"))).ErrorId);
    }
}
