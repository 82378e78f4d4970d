using System.Text;
using System.Text.Json.Nodes;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Models;

/// <summary>
/// The tokenizer a GGUF file carries (<c>tokenizer.ggml.*</c>), as one of LoraShell's tokenizers: a
/// <c>llama</c> (SentencePiece) or <c>gpt2</c> (byte-level BPE) vocabulary is written out as the
/// tokenizer.json it stands for (vocab, merges, special tokens, normalizer or the pre-tokenizer named by
/// <c>tokenizer.ggml.pre</c>) plus a tokenizer_config.json with the special tokens and the chat template,
/// and read by LoraShell's Hugging Face tokenizer, so a GGUF model chats with its own template.
/// </summary>
public static class GgufTokenizer
{
    const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5;

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

    /// <summary>
    /// A SentencePiece vocabulary (▁ pieces with scores and byte tokens) as the tokenizer.json transformers
    /// makes of one (LlamaTokenizerFast): BPE with byte fallback whose merges are every split of a piece into
    /// two pieces, ranked by the merged piece's score (highest first), which merges in SentencePiece's and
    /// llama.cpp's order; the dummy-prefix space and ▁ as normalizer and decoder; specials as added tokens.
    /// </summary>
    static ITextTokenizer SentencePiece(GgufFile f, string[] tokens)
    {
        var scores = Array<float>(f, "tokenizer.ggml.scores") ?? new float[tokens.Length];
        var types = Array<int>(f, "tokenizer.ggml.token_type") ?? Enumerable.Repeat(Normal, tokens.Length).ToArray();
        if (scores.Length != tokens.Length || types.Length != tokens.Length)
            throw Bad(f, $"it has {tokens.Length} tokens, {scores.Length} scores and {types.Length} token types");
        var vocab = new JsonObject();
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        var added = new JsonArray();
        for (int id = 0; id < tokens.Length; id++)
        {
            if (types[id] == Unused) continue;
            if (types[id] is Control or UserDefined) added.Add(AddedToken(id, tokens[id], types[id]));
            if (idOf.TryAdd(tokens[id], id)) vocab[tokens[id]] = id;
        }
        // transformers' SentencePieceExtractor: per piece (in id order) its splits sorted by the two halves'
        // ids, then all of them stably sorted by the merged piece's score, highest first.
        var merges = new List<(string Left, string Right, float Score)>();
        for (int id = 0; id < tokens.Length; id++)
        {
            if (types[id] != Normal) continue;
            string piece = tokens[id];
            var local = new List<(string, string, float, int, int)>();
            for (int k = 1; k < piece.Length; k++)
            {
                if (char.IsLowSurrogate(piece[k])) continue;
                string a = piece[..k], b = piece[k..];
                if (idOf.TryGetValue(a, out int ia) && idOf.TryGetValue(b, out int ib)) local.Add((a, b, scores[id], ia, ib));
            }
            merges.AddRange(local.OrderBy(m => m.Item4).ThenBy(m => m.Item5).Select(m => (m.Item1, m.Item2, m.Item3)));
        }
        var ranked = merges.Select((m, i) => (m, i)).OrderByDescending(x => x.m.Score).ThenBy(x => x.i).Select(x => (JsonNode)new JsonArray(x.m.Left, x.m.Right)).ToArray();

        bool prefix = !f.Metadata.TryGetValue("tokenizer.ggml.add_space_prefix", out var p) || p.Value is not false;
        var normalizers = new JsonArray();
        if (prefix) normalizers.Add(new JsonObject { ["type"] = "Prepend", ["prepend"] = "\u2581" });
        normalizers.Add(new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "\u2581" });
        var decoders = new JsonArray(
            new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "\u2581" }, ["content"] = " " },
            new JsonObject { ["type"] = "ByteFallback" },
            new JsonObject { ["type"] = "Fuse" });
        if (prefix) decoders.Add(new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 });
        string? unk = Id(f, "unknown") is long u && u >= 0 && u < tokens.Length ? tokens[u] : System.Array.IndexOf(types, Unknown) is int ui and >= 0 ? tokens[ui] : null;
        bool addBos = !f.Metadata.TryGetValue("tokenizer.ggml.add_bos_token", out var ab) || ab.Value is not false;
        var model = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = unk, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
            ["fuse_unk"] = true, ["byte_fallback"] = true, ["vocab"] = vocab, ["merges"] = new JsonArray(ranked),
        };
        return Build(f, tokens, added, new JsonObject { ["type"] = "Sequence", ["normalizers"] = normalizers }, null,
            new JsonObject { ["type"] = "Sequence", ["decoders"] = decoders }, model, addBos);
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
            if (types[id] is Control or UserDefined) added.Add(AddedToken(id, tokens[id], types[id]));
            else if (!vocab.ContainsKey(tokens[id])) vocab[tokens[id]] = id;
        }
        bool addBos = Flag(f, "tokenizer.ggml.add_bos_token");
        var model = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
            ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = pre == "llama-bpe",
            ["vocab"] = vocab, ["merges"] = new JsonArray(merges.Select(m => (JsonNode)m).ToArray()),
        };
        return Build(f, tokens, added, null, preTokenizer,
            new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true }, model, addBos);
    }

    static JsonObject AddedToken(int id, string content, int type) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
        ["normalized"] = type == UserDefined, ["special"] = type != UserDefined,
    };

    /// <summary>
    /// The tokenizer.json and tokenizer_config.json the vocabulary stands for, read by the Hugging Face
    /// tokenizer: BOS (and EOS) added as the file says, special-token strings and the chat template for
    /// the template, and the end-of-turn token (<c>eot_token_id</c>) beside EOS as a stop id.
    /// </summary>
    static ITextTokenizer Build(GgufFile f, string[] tokens, JsonArray added, JsonNode? normalizer, JsonNode? preTokenizer, JsonNode decoder, JsonObject model, bool addBos)
    {
        string? Token(string which) => Id(f, which) is long id && id >= 0 && id < tokens.Length ? tokens[id] : null;
        bool addEos = Flag(f, "tokenizer.ggml.add_eos_token") && Token("eos") is not null;
        addBos &= Token("bos") is not null;
        // Nothing added: byte-level BPE keeps its ByteLevel post-processor (offsets only), SentencePiece has none.
        bool byteLevel = decoder["type"]?.GetValue<string>() == "ByteLevel";
        JsonNode? postProcessor = addBos || addEos
            ? Template(addBos ? (Token("bos")!, (int)Id(f, "bos")!.Value) : null, addEos ? (Token("eos")!, (int)Id(f, "eos")!.Value) : null)
            : byteLevel ? new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false } : null;
        var tokenizerJson = new JsonObject
        {
            ["version"] = "1.0", ["added_tokens"] = added, ["normalizer"] = normalizer, ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = postProcessor, ["decoder"] = decoder, ["model"] = model,
        };
        var config = new JsonObject();
        if (Token("bos") is string bos) config["bos_token"] = bos;
        if (Token("eos") is string eos) config["eos_token"] = eos;
        if (Token("unknown") is string unk) config["unk_token"] = unk;
        if (Token("padding") is string pad) config["pad_token"] = pad;
        if (Text(f, "tokenizer.chat_template") is string template) config["chat_template"] = template;
        var stop = new JsonArray();
        foreach (var which in new[] { "eos", "eot", "eom" }) if (Id(f, which) is long id && id >= 0 && id < tokens.Length) stop.Add((int)id);
        return HuggingFaceTextTokenizer.FromDocuments(Encoding.UTF8.GetBytes(tokenizerJson.ToJsonString()), config, f.FilePath,
            new JsonObject { ["eos_token_id"] = stop });
    }

    /// <summary>A TemplateProcessing post-processor adding BOS before and/or EOS after each sequence.</summary>
    static JsonObject Template((string Token, int Id)? bos, (string Token, int Id)? eos)
    {
        JsonArray Sequence(string id, int typeId)
        {
            var items = new JsonArray();
            if (bos is { } b) items.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = b.Token, ["type_id"] = typeId } });
            items.Add(new JsonObject { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } });
            if (eos is { } e) items.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = e.Token, ["type_id"] = typeId } });
            return items;
        }
        var pair = Sequence("A", 0);
        foreach (var item in Sequence("B", 1)) pair.Add(item!.DeepClone());
        var specials = new JsonObject();
        foreach (var t in new[] { bos, eos })
            if (t is { } x && !specials.ContainsKey(x.Token)) specials[x.Token] = new JsonObject { ["id"] = x.Token, ["ids"] = new JsonArray(x.Id), ["tokens"] = new JsonArray(x.Token) };
        return new JsonObject { ["type"] = "TemplateProcessing", ["single"] = Sequence("A", 0), ["pair"] = pair, ["special_tokens"] = specials };
    }

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
