using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tests.HuggingFaceTokenizers;

/// <summary>Loading: malformed files and unsupported components are refused with a clear exception; odd but valid JSON loads.</summary>
public class LoaderTests
{
    private const string MinimalModel = """
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": ["a b"]}
        """;

    private static string Write(string name, string json)
    {
        var path = Path.Combine(Paths.Scratch, name + ".json");
        File.WriteAllText(path, json);
        return path;
    }

    private static string Tokenizer(string components, string model = MinimalModel, string addedTokens = "[]") =>
        "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": " + addedTokens + ", " + components + (components.Length > 0 ? ", " : "") + model + "}";

    [Fact]
    public void Minimal_tokenizer_without_components_loads_and_encodes()
    {
        var tok = HuggingFaceTokenizer.Load(Write("minimal", Tokenizer("\"normalizer\": null, \"pre_tokenizer\": null, \"post_processor\": null, \"decoder\": null")));
        var enc = tok.Encode("abc");
        Assert.Equal([2, 3], enc.Ids);
        Assert.Equal(["ab", "c"], enc.Tokens);
        Assert.Equal([(0, 2), (2, 3)], enc.Offsets);
        Assert.Equal("ab c", tok.Decode(enc.Ids)); // no decoder: tokens joined with spaces, like the crate
        Assert.Equal(4, tok.VocabSize);
        Assert.Equal("ab", tok.IdToToken(2));
        Assert.Equal(3, tok.TokenToId("c"));
        Assert.Null(tok.TokenToId("zz"));
    }

    [Fact]
    public void Long_and_escaped_vocab_entries_load()
    {
        string longA = new('a', 150), longAA = new('a', 300);
        string model = $$"""
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
                      "vocab": {"{{longA}}": 0, "{{longAA}}": 1, "\u00e9\"\\\n\ud83d\ude00": 2, "x": 3},
                      "merges": [["{{longA}}", "{{longA}}"]]}
            """;
        var tok = HuggingFaceTokenizer.Load(Write("long", Tokenizer("", model)));
        Assert.Equal(1, tok.TokenToId(longAA));
        Assert.Equal(2, tok.TokenToId("é\"\\\n😀"));
        Assert.Equal([1], tok.EncodeIds(longAA)); // ignore_merges: a whole-word vocab hit is one token
    }

    [Fact]
    public void Added_token_ids_follow_the_crate()
    {
        // "b" is in the model vocab (keeps id 1); "<new>" is not and gets the first id after the vocab.
        string added = """
            [{"id": 1, "content": "b", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
             {"id": 4, "content": "<new>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}]
            """;
        var tok = HuggingFaceTokenizer.Load(Write("added", Tokenizer("", addedTokens: added)));
        Assert.Equal(5, tok.VocabSize);
        Assert.Equal([1, 4], tok.AddedTokens.Select(t => t.Id));
        Assert.Equal([0, 1, 4, 3], tok.EncodeIds("ab<new>c"));
        Assert.Equal("a <new> c", tok.Decode([0, 1, 4, 3], skipSpecialTokens: true));
    }

    public static IEnumerable<object[]> Refused() =>
    [
        ["malformed", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,, }}", "Malformed JSON"],
        ["truncated", "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\"", "Malformed JSON"],
        ["not_object", "[1, 2]", "Malformed JSON"],
        ["lowercase_typo", Tokenizer("\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}"), "normalizer.type = Precompiled"],
        ["unigram", Tokenizer("", "\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": []}"), "model.type = Unigram"],
        ["wordpiece", Tokenizer("", "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {}}"), "model.type = WordPiece"],
        ["dropout", Tokenizer("", MinimalModel.Replace("\"dropout\": null", "\"dropout\": 0.1")), "model.dropout"],
        ["pre_unknown", Tokenizer("\"pre_tokenizer\": {\"type\": \"UnicodeScripts\"}"), "pre_tokenizer.type = UnicodeScripts"],
        ["decoder_ctc", Tokenizer("\"decoder\": {\"type\": \"CTC\", \"pad_token\": \"<pad>\", \"word_delimiter_token\": \"|\", \"cleanup\": true}"), "decoder.type = CTC"],
        ["unknown_option", Tokenizer("\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"frobnicate\": true}"), "option frobnicate"],
        ["bad_behavior", Tokenizer("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\", \"invert\": false}"), "split behavior"],
        ["bad_regex", Tokenizer("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a++\"}, \"behavior\": \"Isolated\", \"invert\": false}"), "cannot be translated"],
        ["merge_oov", Tokenizer("", MinimalModel.Replace("[\"a b\"]", "[\"a z\"]")), "not in the vocabulary"],
        ["merge_form", Tokenizer("", MinimalModel.Replace("[\"a b\"]", "[\"a b c\"]")), "not of the form"],
        ["template_b", Tokenizer("\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"Sequence\": {\"id\": \"B\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {}}"), "only $A"],
        ["no_model", "{\"version\": \"1.0\"}", "no \"model\""],
        ["version", Tokenizer("").Replace("\"1.0\"", "\"2.0\""), "version"],
    ];

    [Theory]
    [MemberData(nameof(Refused))]
    public void Unsupported_or_malformed_files_are_refused(string name, string json, string expected)
    {
        var ex = Assert.Throws<TokenizerFormatException>(() => HuggingFaceTokenizer.Load(Write("refused_" + name, json)));
        Assert.Contains(expected, ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.NotNull(ex.Path);
    }

    [Fact]
    public void Unsupported_component_names_what_is_supported()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() =>
            HuggingFaceTokenizer.Load(Write("refused_bert_normalizer", Tokenizer("\"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true}"))));
        Assert.Equal("normalizer.type = BertNormalizer", ex.Component);
        Assert.Equal("$.normalizer", ex.Path);
        Assert.Contains("Supported: Sequence, NFC", ex.Message);
    }

    [Fact]
    public void Missing_file_is_reported()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() => HuggingFaceTokenizer.Load(Path.Combine(Paths.Scratch, "does-not-exist.json")));
        Assert.Contains("Cannot read", ex.Message);
    }
}
