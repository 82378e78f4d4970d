using System.Text;
using System.Text.Json.Nodes;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Models;

/// <summary>
/// The tokenizer a GGUF file carries (<c>tokenizer.ggml.*</c>), as one of LoraShell's tokenizers: a
/// <c>llama</c> (SentencePiece) vocabulary becomes the score-merging tokenizer llama2.c and llama.cpp
/// share; a <c>gpt2</c> (byte-level BPE) vocabulary is written out as the tokenizer.json it came from
/// (vocab, merges, special tokens, the pre-tokenizer named by <c>tokenizer.ggml.pre</c>) plus a
/// tokenizer_config.json with the chat template, and read by the Hugging Face tokenizer.
/// </summary>
public static class GgufTokenizer
{
    const int Control = 3, UserDefined = 4, Unused = 5;

    /// <summary>The file's tokenizer, or null when it has none (<c>tokenizer.ggml.model</c> absent or "none").</summary>
    public static ITextTokenizer? Read(GgufFile f)
    {
        string? model = Text(f, "tokenizer.ggml.model");
        if (model is null or "none" or "no_vocab") return null;
        var tokens = Array<string>(f, "tokenizer.ggml.tokens") ?? throw Bad(f, "it names a tokenizer but has no tokenizer.ggml.tokens");
        return model switch
        {
            "llama" => SentencePiece(f, tokens),
            "gpt2" => ByteLevelBpe(f, tokens),
            _ => throw LoraShellException.InvalidData("UnsupportedGgufTokenizer",
                $"'{f.FilePath}' has a '{model}' tokenizer; LoraShell reads llama (SentencePiece) and gpt2 (byte-level BPE) ones. Pass the model's own tokenizer with -TokenizerPath.", f.FilePath),
        };
    }

    static ITextTokenizer SentencePiece(GgufFile f, string[] tokens)
    {
        var scores = Array<float>(f, "tokenizer.ggml.scores") ?? new float[tokens.Length];
        if (scores.Length != tokens.Length) throw Bad(f, $"it has {tokens.Length} tokens but {scores.Length} scores");
        foreach (var (key, expected) in new[] { ("bos", 1L), ("eos", 2L), ("unknown", 0L) })
            if (Id(f, key) is long id && id != expected)
                throw LoraShellException.InvalidData("UnsupportedGgufTokenizer",
                    $"'{f.FilePath}' puts its {key} token at id {id}; LoraShell's SentencePiece tokenizer needs Llama's ids (unknown 0, BOS 1, EOS 2). Pass the model's tokenizer with -TokenizerPath.", f.FilePath);
        var pieces = tokens.Select(t => Encoding.UTF8.GetBytes(t.Replace('\u2581', ' '))).ToList();
        return Llama2cTokenizer.FromPieces(f.FilePath, pieces, scores);
    }

    static ITextTokenizer ByteLevelBpe(GgufFile f, string[] tokens)
    {
        var types = Array<int>(f, "tokenizer.ggml.token_type") ?? new int[tokens.Length];
        if (types.Length != tokens.Length) throw Bad(f, $"it has {tokens.Length} tokens but {types.Length} token types");
        var merges = Array<string>(f, "tokenizer.ggml.merges") ?? throw Bad(f, "its gpt2 tokenizer has no tokenizer.ggml.merges");
        string pre = Text(f, "tokenizer.ggml.pre") ?? "default";
        if (pre == "llama3") pre = "llama-bpe";
        JsonNode preTokenizer;
        if (pre == LlamaCppPreTokenizers.Gpt2)
            preTokenizer = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        else if (LlamaCppPreTokenizers.PatternOf(pre) is string pattern)
            preTokenizer = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
            };
        else
            throw LoraShellException.InvalidData("UnsupportedGgufTokenizer",
                $"'{f.FilePath}' names the pre-tokenizer '{pre}', which LoraShell does not map ({string.Join(", ", LlamaCppPreTokenizers.Names)}). Pass the model's own tokenizer.json with -TokenizerPath.", f.FilePath);

        var vocab = new JsonObject();
        var added = new JsonArray();
        for (int id = 0; id < tokens.Length; id++)
        {
            if (types[id] == Unused) continue;
            if (types[id] is Control or UserDefined)
                added.Add(new JsonObject
                {
                    ["id"] = id, ["content"] = tokens[id], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                    ["normalized"] = types[id] == UserDefined, ["special"] = types[id] == Control,
                });
            else if (!vocab.ContainsKey(tokens[id])) vocab[tokens[id]] = id;
        }
        bool addBos = Flag(f, "tokenizer.ggml.add_bos_token") && Id(f, "bos") is not null;
        var tokenizerJson = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = addBos ? BosTemplate(tokens[(int)Id(f, "bos")!.Value], (int)Id(f, "bos")!.Value)
                : new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = pre == "llama-bpe",
                ["vocab"] = vocab, ["merges"] = new JsonArray(merges.Select(m => (JsonNode)m).ToArray()),
            },
        };
        var config = new JsonObject();
        string? Token(string which) => Id(f, which) is long id && id >= 0 && id < tokens.Length ? tokens[id] : null;
        if (Token("bos") is string bos) config["bos_token"] = bos;
        if (Token("eos") is string eos) config["eos_token"] = eos;
        if (Token("padding") is string pad) config["pad_token"] = pad;
        if (Text(f, "tokenizer.chat_template") is string template) config["chat_template"] = template;
        return HuggingFaceTextTokenizer.FromDocuments(Encoding.UTF8.GetBytes(tokenizerJson.ToJsonString()), config, f.FilePath);
    }

    static JsonObject BosTemplate(string bos, int id) => new()
    {
        ["type"] = "TemplateProcessing",
        ["single"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
        ["pair"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 1 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
        ["special_tokens"] = new JsonObject { [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(id), ["tokens"] = new JsonArray(bos) } },
    };

    static string? Text(GgufFile f, string key) => f.Metadata.TryGetValue(key, out var v) ? v.Value as string : null;
    static bool Flag(GgufFile f, string key) => f.Metadata.TryGetValue(key, out var v) && v.Value is true;
    static long? Id(GgufFile f, string which) => f.Metadata.TryGetValue($"tokenizer.ggml.{which}_token_id", out var v) ? v.AsInteger : null;

    static T[]? Array<T>(GgufFile f, string key)
    {
        if (!f.Metadata.TryGetValue(key, out var v)) return null;
        return v.Value switch
        {
            T[] typed => typed,
            object[] boxed => boxed.Select(o => (T)Convert.ChangeType(o, typeof(T), System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
            uint[] u when typeof(T) == typeof(int) => (T[])(object)u.Select(x => (int)x).ToArray(),
            _ => throw Bad(f, $"{key} is a {v.Type} of {v.ElementType}, not an array of {typeof(T).Name}"),
        };
    }

    static LoraShellException Bad(GgufFile f, string problem)
        => LoraShellException.InvalidData("InvalidGguf", $"'{f.FilePath}' is not a usable GGUF model: {problem}.", f.FilePath);
}
