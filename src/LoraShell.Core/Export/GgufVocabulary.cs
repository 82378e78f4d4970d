using System.Text;
using System.Text.Json.Nodes;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Export;

/// <summary>
/// A tokenizer as GGUF metadata (<c>tokenizer.ggml.*</c>), the way llama.cpp's converter writes it:
/// <c>llama</c> for SentencePiece-style vocabularies (pieces with ▁ for spaces, scores, byte tokens
/// &lt;0xNN&gt;) and <c>gpt2</c> for byte-level BPE (tokens as tokenizer.json spells them, merges "a b",
/// and the pre-tokenizer llama.cpp must use, named by <c>tokenizer.ggml.pre</c>). The token list is
/// padded to the model's vocab_size with unused tokens, as llama.cpp needs one token per embedding row.
/// </summary>
public sealed record GgufVocabulary
{
    // llama.cpp's token types (llama_token_type).
    public const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    public required string Model { get; init; }
    public string? Pre { get; init; }
    public required string[] Tokens { get; init; }
    public float[]? Scores { get; init; }
    public required int[] Types { get; init; }
    public string[]? Merges { get; init; }
    public int? Bos { get; init; }
    public int? Eos { get; init; }
    public int? Unk { get; init; }
    public int? Pad { get; init; }
    public bool AddBos { get; init; }
    public bool AddEos { get; init; }
    public string? ChatTemplate { get; init; }

    public void AddTo(GgufWriter w)
    {
        w.Add("tokenizer.ggml.model", GgufValue.String(Model));
        if (Pre is not null) w.Add("tokenizer.ggml.pre", GgufValue.String(Pre));
        w.Add("tokenizer.ggml.tokens", GgufValue.Strings(Tokens));
        if (Scores is not null) w.Add("tokenizer.ggml.scores", GgufValue.Float32s(Scores));
        w.Add("tokenizer.ggml.token_type", GgufValue.Int32s(Types));
        if (Merges is not null) w.Add("tokenizer.ggml.merges", GgufValue.Strings(Merges));
        if (Bos is int b) w.Add("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)b));
        if (Eos is int e) w.Add("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)e));
        if (Unk is int u) w.Add("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)u));
        if (Pad is int p) w.Add("tokenizer.ggml.padding_token_id", GgufValue.UInt32((uint)p));
        w.Add("tokenizer.ggml.add_bos_token", GgufValue.Bool(AddBos));
        w.Add("tokenizer.ggml.add_eos_token", GgufValue.Bool(AddEos));
        if (ChatTemplate is not null) w.Add("tokenizer.chat_template", GgufValue.String(ChatTemplate));
    }

    /// <summary>The vocabulary of a tokenizer LoraShell loaded, padded to <paramref name="vocabSize"/> rows.</summary>
    public static GgufVocabulary From(ITextTokenizer tokenizer, int vocabSize) => tokenizer switch
    {
        Llama2cTokenizer t => FromLlama2c(t, vocabSize),
        HuggingFaceTextTokenizer t => FromTokenizerJson(t, vocabSize),
        _ => throw LoraShellException.InvalidArgument("GgufTokenizerNotSupported",
            $"The tokenizer '{tokenizer.Source}' ({tokenizer.GetType().Name}) cannot be written into a GGUF file yet; GGUF export takes a llama2.c tok*.bin or a Hugging Face tokenizer.json. Load the model with -TokenizerPath pointing at its tokenizer.json.", tokenizer.Source),
    };

    /// <summary>llama2.c's pieces are SentencePiece's with ▁ turned into spaces (and BOS/EOS dressed in newlines): undo both.</summary>
    static GgufVocabulary FromLlama2c(Llama2cTokenizer t, int vocabSize)
    {
        const int unk = 0, bos = 1, eos = 2;
        var tokens = new string[vocabSize];
        var scores = new float[vocabSize];
        var types = new int[vocabSize];
        for (int id = 0; id < vocabSize; id++)
        {
            if (id >= t.VocabSize) { (tokens[id], types[id]) = ($"[PAD{id}]", Unused); continue; }
            scores[id] = t.Score(id);
            string piece = Encoding.UTF8.GetString(t.Piece(id));
            (tokens[id], types[id]) = id switch
            {
                unk => ("<unk>", Unknown),
                bos => ("<s>", Control),
                eos => ("</s>", Control),
                _ when IsByteToken(piece) => (piece, Byte),
                _ => (piece.Replace(' ', '\u2581'), Normal),
            };
        }
        return new GgufVocabulary
        {
            Model = "llama", Tokens = tokens, Scores = scores, Types = types,
            Bos = bos, Eos = eos, Unk = unk, AddBos = true, AddEos = false,
        };
    }

    static bool IsByteToken(string piece) => piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>';

    /// <summary>A byte-level BPE tokenizer.json (GPT-2, Qwen, Llama 3): llama.cpp's <c>gpt2</c> vocabulary.</summary>
    static GgufVocabulary FromTokenizerJson(HuggingFaceTextTokenizer t, int vocabSize)
    {
        var json = JsonNode.Parse(File.ReadAllText(t.Source)) as JsonObject
            ?? throw LoraShellException.InvalidData("InvalidTokenizer", $"'{t.Source}' is not a JSON object.", t.Source);
        var model = json["model"] as JsonObject;
        string type = (string?)model?["type"] ?? "";
        bool byteFallback = model?["byte_fallback"]?.GetValue<bool>() == true;
        if (type == "BPE" && !IsByteLevel(json) && byteFallback) return FromSentencePieceBpe(t, json, model!, vocabSize);
        if (type != "BPE" || !IsByteLevel(json))
            throw LoraShellException.InvalidArgument("GgufTokenizerNotSupported",
                $"'{t.Source}' is a {(type.Length > 0 ? type : "model-less")} tokenizer{(type == "BPE" ? " without byte-level pre-tokenization or byte fallback" : "")}; GGUF export writes byte-level BPE tokenizer.json files (GPT-2, Qwen, Llama 3), SentencePiece-style BPE ones with byte fallback (Llama 2, TinyLlama, Mistral) and llama2.c tokenizers.", t.Source);
        string pre = PreTokenizerName(json, t.Source);

        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        for (int id = 0; id < vocabSize; id++) (tokens[id], types[id]) = ($"[PAD{id}]", Unused);
        foreach (var (token, idNode) in (JsonObject)model!["vocab"]!)
        {
            int id = idNode!.GetValue<int>();
            if (id >= vocabSize) throw TooLarge(t.Source, token, id, vocabSize);
            (tokens[id], types[id]) = (token, Normal);
        }
        foreach (var added in json["added_tokens"] as JsonArray ?? new JsonArray())
        {
            int id = added!["id"]!.GetValue<int>();
            if (id >= vocabSize) throw TooLarge(t.Source, (string?)added["content"] ?? "", id, vocabSize);
            tokens[id] = added["content"]!.GetValue<string>();
            types[id] = added["special"]?.GetValue<bool>() == true ? Control : UserDefined;
        }
        var merges = (model["merges"] as JsonArray ?? new JsonArray()).Select(m => m switch
        {
            JsonArray pair => $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}",
            _ => m!.GetValue<string>(),
        }).ToArray();

        // What the post-processor adds around a text is what llama.cpp's add_bos/add_eos must add.
        var plain = t.Encode("a");
        var full = t.EncodeWithSpecialTokens("a");
        int prefix = full.Count > 0 && (plain.Count == 0 || full[0] != plain[0]) ? 1 : 0;
        bool addEos = full.Count > plain.Count + prefix;
        int? bos = t.BosId ?? (prefix == 1 ? full[0] : null);
        return new GgufVocabulary
        {
            Model = "gpt2", Pre = pre, Tokens = tokens, Types = types, Merges = merges,
            Bos = bos, Eos = t.EosId, Pad = PadId(t), AddBos = prefix == 1, AddEos = addEos,
            ChatTemplate = t.Chat?.Template.Source,
        };
    }

    /// <summary>
    /// A SentencePiece model converted to tokenizer.json (Llama 2, TinyLlama, Mistral: BPE over ▁-pieces with
    /// byte fallback) back to llama.cpp's <c>llama</c> vocabulary. SentencePiece merges the adjacent pair whose
    /// merged piece scores highest; the tokenizer.json lists merges in that order, so a piece's score is minus
    /// the rank of the first merge that makes it, and the two orders agree. Pieces no merge makes (characters,
    /// bytes, specials) score 0: llama.cpp never merges into them.
    /// </summary>
    static GgufVocabulary FromSentencePieceBpe(HuggingFaceTextTokenizer t, JsonObject json, JsonObject model, int vocabSize)
    {
        var tokens = new string[vocabSize];
        var scores = new float[vocabSize];
        var types = new int[vocabSize];
        for (int id = 0; id < vocabSize; id++) (tokens[id], types[id]) = ($"[PAD{id}]", Unused);
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, idNode) in (JsonObject)model["vocab"]!)
        {
            int id = idNode!.GetValue<int>();
            if (id >= vocabSize) throw TooLarge(t.Source, token, id, vocabSize);
            (tokens[id], types[id]) = (token, IsByteToken(token) ? Byte : Normal);
            idOf[token] = id;
        }
        var made = new HashSet<int>();
        int rank = 0;
        foreach (var m in model["merges"] as JsonArray ?? new JsonArray())
        {
            var (a, b) = m is JsonArray pair ? (pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()) : Split(m!.GetValue<string>());
            if (idOf.TryGetValue(a + b, out int merged) && made.Add(merged)) scores[merged] = -rank;
            rank++;
        }
        if ((string?)model["unk_token"] is string unk && idOf.TryGetValue(unk, out int unkId)) types[unkId] = Unknown;
        foreach (var added in json["added_tokens"] as JsonArray ?? new JsonArray())
        {
            int id = added!["id"]!.GetValue<int>();
            if (id >= vocabSize) throw TooLarge(t.Source, (string?)added["content"] ?? "", id, vocabSize);
            tokens[id] = added["content"]!.GetValue<string>();
            if (types[id] != Unknown) types[id] = added["special"]?.GetValue<bool>() == true ? Control : UserDefined;
        }
        var plain = t.Encode("a");
        var full = t.EncodeWithSpecialTokens("a");
        bool addBos = full.Count > plain.Count && full[0] == t.BosId;
        return new GgufVocabulary
        {
            Model = "llama", Tokens = tokens, Scores = scores, Types = types,
            Bos = t.BosId, Eos = t.EosId, Unk = Array.IndexOf(types, Unknown) is int u and >= 0 ? u : null, Pad = PadId(t),
            AddBos = addBos, AddEos = full.Count > plain.Count + (addBos ? 1 : 0), ChatTemplate = t.Chat?.Template.Source,
        };
    }

    static (string, string) Split(string merge)
    {
        int space = merge.IndexOf(' ', 1);
        return space < 0 ? (merge, "") : (merge[..space], merge[(space + 1)..]);
    }

    static LoraShellException TooLarge(string source, string token, int id, int vocabSize)
        => LoraShellException.InvalidData("TokenizerVocabMismatch", $"'{source}' has token '{token}' with id {id}, but the model has only {vocabSize} embedding rows.", source);

    static int? PadId(HuggingFaceTextTokenizer t)
        => t.Chat?.SpecialTokens.TryGetValue("pad_token", out var pad) == true && pad is not null
            ? t.Tokenize(pad, false) is [var only] ? only.Id : null
            : null;

    static bool IsByteLevel(JsonObject json)
        => json["pre_tokenizer"]?.ToJsonString().Contains("\"ByteLevel\"", StringComparison.Ordinal) == true
           || json["decoder"]?.ToJsonString().Contains("\"ByteLevel\"", StringComparison.Ordinal) == true;

    /// <summary>
    /// llama.cpp's name for the pre-tokenizer (<c>tokenizer.ggml.pre</c>): GPT-2's ByteLevel regex is
    /// "gpt-2"; a Split by one of the known patterns is named after it. An unknown pattern is refused:
    /// llama.cpp would fall back to a different split and tokenize differently without a word.
    /// </summary>
    static string PreTokenizerName(JsonObject json, string source)
    {
        var pre = json["pre_tokenizer"];
        var parts = pre?["type"]?.GetValue<string>() == "Sequence" ? (pre["pretokenizers"] as JsonArray)?.OfType<JsonObject>().ToList() ?? new() : pre is JsonObject o ? new List<JsonObject> { o } : new();
        var split = parts.FirstOrDefault(p => (string?)p["type"] == "Split");
        if (split is null)
        {
            if (parts.Any(p => (string?)p["type"] == "ByteLevel" && p["use_regex"]?.GetValue<bool>() != false)) return LlamaCppPreTokenizers.Gpt2;
            throw LoraShellException.InvalidArgument("GgufPreTokenizerNotSupported", $"'{source}' has a pre-tokenizer LoraShell cannot name for llama.cpp ({pre?.ToJsonString()[..Math.Min(200, pre.ToJsonString().Length)]}).", source);
        }
        string pattern = (string?)split["pattern"]?["Regex"] ?? (string?)split["pattern"]?["String"] ?? "";
        return LlamaCppPreTokenizers.NameOf(pattern) ?? throw LoraShellException.InvalidArgument("GgufPreTokenizerNotSupported",
            $"'{source}' splits text with the pattern {pattern}, which is not one of the pre-tokenizers LoraShell maps to llama.cpp ({string.Join(", ", LlamaCppPreTokenizers.Names)}); llama.cpp would tokenize it differently.", source);
    }
}
