using System.Text.Json;
using System.Text.Json.Nodes;
using LoraShell.Core.Tokenizers.HuggingFace;

namespace LoraShell.Core.Tokenizers;

/// <summary>
/// A Hugging Face tokenizer folder as transformers' AutoTokenizer reads it: <c>tokenizer.json</c> (the
/// tokenization itself, <see cref="HuggingFaceTokenizer"/>), <c>tokenizer_config.json</c> (special tokens,
/// chat template) and, when the folder is a model's, <c>generation_config.json</c> (the ids generation
/// stops at).
/// </summary>
public sealed class HuggingFaceTextTokenizer : ITextTokenizer
{
    public const string TokenizerFile = "tokenizer.json";
    public const string GenerationConfigFile = "generation_config.json";

    readonly HuggingFaceTokenizer _tokenizer;
    readonly List<int> _stopIds;
    // Added tokens marked special (chat markers, BOS/EOS): special wherever they occur, not only where the
    // post-processor inserts them (which is all the crate's special_tokens_mask marks).
    readonly HashSet<int> _specialIds;

    HuggingFaceTextTokenizer(HuggingFaceTokenizer tokenizer, JsonObject? config, ChatFormat? chat, List<int> stopIds, List<string> files)
    {
        _tokenizer = tokenizer;
        _specialIds = tokenizer.AddedTokens.Where(t => t.Special).Select(t => t.Id).ToHashSet();
        Chat = chat;
        Files = files;
        var special = config is null ? new Dictionary<string, string?>() : ChatFormat.ReadSpecialTokens(config);
        BosId = special.TryGetValue("bos_token", out var bos) && bos is not null ? tokenizer.TokenToId(bos) : null;
        EosId = special.TryGetValue("eos_token", out var eos) && eos is not null ? tokenizer.TokenToId(eos) : null;
        if (EosId is int e && !stopIds.Contains(e)) stopIds.Insert(0, e);
        _stopIds = stopIds;
    }

    public string Source => _tokenizer.Source;
    public IReadOnlyList<string> Files { get; }
    public int VocabSize => _tokenizer.VocabSize;
    public int? BosId { get; }
    public int? EosId { get; }
    public IReadOnlyCollection<int> StopIds => _stopIds;
    public ChatFormat? Chat { get; }

    /// <summary>Strings that end a turn in a chat rendering: the stop tokens' strings (eos, im_end, eot_id, …).</summary>
    public IReadOnlyList<string> EndOfTurnStrings => _stopIds.Select(_tokenizer.IdToToken).OfType<string>().Distinct().ToList();

    /// <summary>Loads <c>tokenizer.json</c> (a file, or the folder holding it) with the configs beside it.</summary>
    public static HuggingFaceTextTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        string file = Directory.Exists(full) ? Path.Combine(full, TokenizerFile) : full;
        string folder = Path.GetDirectoryName(file)!;
        if (!File.Exists(file))
            throw LoraShellException.NotFound("TokenizerNotFound", $"'{file}' does not exist; a Hugging Face tokenizer folder holds {TokenizerFile}.", file);
        HuggingFaceTokenizer tokenizer;
        try { tokenizer = HuggingFaceTokenizer.Load(file); }
        catch (TokenizerFormatException e)
        {
            throw LoraShellException.InvalidData("UnsupportedTokenizer", $"'{file}' cannot be used: {e.Message}", file);
        }
        var files = new List<string> { file };
        var config = ReadJson(Path.Combine(folder, ChatFormat.ConfigFile), files);
        var chat = ChatFormat.Read(folder, config);
        if (chat is not null && chat.Source.EndsWith(ChatFormat.TemplateFile, StringComparison.Ordinal)) files.Add(chat.Source);
        var generation = ReadJson(Path.Combine(folder, GenerationConfigFile), files);
        return Create(tokenizer, config, chat, generation, files);
    }

    /// <summary>
    /// A tokenizer from documents held in memory: tokenizer.json content and a tokenizer_config.json
    /// object (special tokens, chat_template), e.g. rebuilt from a GGUF file. It has no files of its own.
    /// </summary>
    public static HuggingFaceTextTokenizer FromDocuments(byte[] tokenizerJson, JsonObject? config, string source, JsonObject? generationConfig = null)
    {
        HuggingFaceTokenizer tokenizer;
        try { tokenizer = HuggingFaceTokenizer.Parse(tokenizerJson, source); }
        catch (TokenizerFormatException e)
        {
            throw LoraShellException.InvalidData("UnsupportedTokenizer", $"The tokenizer of '{source}' cannot be used: {e.Message}", source);
        }
        return Create(tokenizer, config, config is null ? null : ChatFormat.FromConfig(config, source), generationConfig, new List<string>());
    }

    static HuggingFaceTextTokenizer Create(HuggingFaceTokenizer tokenizer, JsonObject? config, ChatFormat? chat, JsonObject? generation, List<string> files)
    {
        var stop = new List<int>();
        switch (generation?["eos_token_id"])
        {
            case JsonArray a: stop.AddRange(a.OfType<JsonValue>().Select(v => v.GetValue<int>())); break;
            case JsonValue v when v.TryGetValue<int>(out int id): stop.Add(id); break;
        }
        return new HuggingFaceTextTokenizer(tokenizer, config, chat, stop.Where(id => id >= 0 && id < tokenizer.VocabSize).Distinct().ToList(), files);
    }

    static JsonObject? ReadJson(string path, List<string> files)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var obj = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not an object");
            files.Add(path);
            return obj;
        }
        catch (JsonException e) { throw LoraShellException.InvalidData("InvalidTokenizerConfig", $"'{path}' is not valid JSON ({e.Message}).", path); }
    }

    public IReadOnlyList<int> Encode(string text) => _tokenizer.EncodeIds(text, addSpecialTokens: false);

    public IReadOnlyList<int> EncodeWithSpecialTokens(string text) => _tokenizer.EncodeIds(text, addSpecialTokens: true);

    public IReadOnlyList<TokenSpan> Tokenize(string text, bool addSpecialTokens)
    {
        var e = _tokenizer.Encode(text, addSpecialTokens);
        return Enumerable.Range(0, e.Ids.Count).Select(i => new TokenSpan(e.Ids[i], e.Tokens[i], e.Offsets[i].Start, e.Offsets[i].End, e.SpecialTokensMask[i] != 0 || _specialIds.Contains(e.Ids[i]))).ToList();
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var list = ids.ToList();
        foreach (var id in list)
            if (id < 0 || id >= VocabSize)
                throw LoraShellException.InvalidArgument("TokenOutOfRange", $"Token id {id} is outside the tokenizer's vocabulary (0..{VocabSize - 1}).", id);
        return _tokenizer.Decode(list, skipSpecialTokens);
    }
}
