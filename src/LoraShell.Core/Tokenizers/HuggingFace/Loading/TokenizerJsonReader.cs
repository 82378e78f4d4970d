using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using LoraShell.Core.Tokenizers.HuggingFace.Models;

namespace LoraShell.Core.Tokenizers.HuggingFace.Loading;

/// <summary>The raw content of a tokenizer.json: the parsed BPE model and the small component subtrees.</summary>
internal sealed class TokenizerJsonContent
{
    public required BpeModel Model { get; init; }
    public required List<AddedToken> AddedTokens { get; init; }
    public JsonCursor? Normalizer { get; init; }
    public JsonCursor? PreTokenizer { get; init; }
    public JsonCursor? PostProcessor { get; init; }
    public JsonCursor? Decoder { get; init; }
}

/// <summary>
/// Reads tokenizer.json. The model's vocab and merges (hundreds of thousands of entries) are streamed by
/// <see cref="JsonScanner"/> straight into the model's tables; merges are resolved to ids without building a string
/// per merge. Every other value is small and is parsed (and fully validated) by <see cref="JsonDocument"/>.
/// </summary>
internal static class TokenizerJsonReader
{
    private static readonly string[] s_topLevelKeys =
        ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"];

    public static TokenizerJsonContent Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerFormatException($"Cannot read tokenizer file: {ex.Message}", null, path, ex);
        }
        return Parse(bytes, path);
    }

    internal static TokenizerJsonContent Parse(byte[] bytes, string file)
    {
        var s = new JsonScanner(bytes, file);
        s.Expect((byte)'{', "$");
        ModelParts? model = null;
        JsonCursor? normalizer = null, preTokenizer = null, postProcessor = null, decoder = null;
        var added = new List<AddedToken>();
        var seen = new HashSet<string>();
        if (!s.TryConsume((byte)'}'))
        {
            while (true)
            {
                string name = s.ReadString("$").ToString();
                if (!seen.Add(name)) throw s.Error($"duplicate field \"{name}\"", "$");
                s.Expect((byte)':', $"$.{name}");
                switch (name)
                {
                    case "version":
                    {
                        var slice = s.SkipValue("$.version");
                        using var doc = ParseSlice(s, slice, "$.version");
                        if (doc.RootElement.ValueKind != JsonValueKind.String || doc.RootElement.GetString() != "1.0")
                        {
                            throw new TokenizerFormatException("Unknown tokenizer.json version (supported: \"1.0\").", "version", "$.version");
                        }
                        break;
                    }
                    case "truncation":
                    case "padding":
                    {
                        // Validated but not applied: like transformers' tokenizer(text), nothing is truncated or padded.
                        using var _ = ParseSlice(s, s.SkipValue($"$.{name}"), $"$.{name}");
                        break;
                    }
                    case "added_tokens":
                        added = ReadAddedTokens(s);
                        break;
                    case "normalizer":
                        normalizer = ReadComponent(s, "$.normalizer", "normalizer");
                        break;
                    case "pre_tokenizer":
                        preTokenizer = ReadComponent(s, "$.pre_tokenizer", "pre_tokenizer");
                        break;
                    case "post_processor":
                        postProcessor = ReadComponent(s, "$.post_processor", "post_processor");
                        break;
                    case "decoder":
                        decoder = ReadComponent(s, "$.decoder", "decoder");
                        break;
                    case "model":
                        model = ReadModel(s);
                        break;
                    default:
                        throw new TokenizerFormatException(
                            $"Unknown top-level field \"{name}\". Supported: {string.Join(", ", s_topLevelKeys)}.", name, $"$.{name}");
                }
                if (s.TryConsume((byte)',')) continue;
                s.Expect((byte)'}', "$");
                break;
            }
        }
        if (s.Peek() != 0) throw s.Error("unexpected content after the top-level object", "$");
        if (model is null) throw new TokenizerFormatException("The file has no \"model\".", "model", "$.model");
        return new TokenizerJsonContent
        {
            Model = model.Build(),
            AddedTokens = added,
            Normalizer = normalizer,
            PreTokenizer = preTokenizer,
            PostProcessor = postProcessor,
            Decoder = decoder,
        };
    }

    private static JsonDocument ParseSlice(JsonScanner s, (int Start, int End) slice, string path)
    {
        try
        {
            return JsonDocument.Parse(s.Data.AsMemory(slice.Start, slice.End - slice.Start));
        }
        catch (JsonException ex)
        {
            int saved = s.Position;
            s.Position = slice.Start;
            var error = s.Error($"{ex.Message}", path);
            s.Position = saved;
            throw error;
        }
    }

    private static JsonCursor? ReadComponent(JsonScanner s, string path, string kind)
    {
        if (s.TryConsumeLiteral("null")) return null;
        using var doc = ParseSlice(s, s.SkipValue(path), path);
        return new JsonCursor(doc.RootElement.Clone(), path, kind);
    }

    private static List<AddedToken> ReadAddedTokens(JsonScanner s)
    {
        var result = new List<AddedToken>();
        if (s.TryConsumeLiteral("null")) return result;
        using var doc = ParseSlice(s, s.SkipValue("$.added_tokens"), "$.added_tokens");
        var root = new JsonCursor(doc.RootElement, "$.added_tokens", "added_tokens");
        if (root.Element.ValueKind != JsonValueKind.Array) throw root.Error("added_tokens must be an array.");
        int i = 0;
        foreach (var item in root.Element.EnumerateArray())
        {
            var c = new JsonCursor(item, $"$.added_tokens[{i++}]", "added_tokens");
            if (item.ValueKind != JsonValueKind.Object) throw c.Error("An added token must be an object.");
            c.AllowOnly("id", "content", "single_word", "lstrip", "rstrip", "normalized", "special");
            bool special = c.GetBool("special", false);
            int addedId = c.GetInt("id", 0);
            if (addedId > MaxTokenId) throw c.Error($"id {addedId} is more than any vocabulary holds (ids are at most {MaxTokenId:N0}).");
            result.Add(new AddedToken(
                addedId,
                c.GetString("content"),
                special,
                c.GetBool("single_word", false),
                c.GetBool("lstrip", false),
                c.GetBool("rstrip", false),
                // The crate's AddedToken default: normalized = !special.
                c.GetBool("normalized", !special)));
        }
        return result;
    }

    /// <summary>The BPE model, accumulated while streaming (field order in the file is free).</summary>
    private sealed class ModelParts(byte[] data, string file)
    {
        public VocabIndex? Vocab;
        public string?[]? IdToToken;
        public string? UnkToken, Prefix, Suffix;
        public bool FuseUnk, ByteFallback, IgnoreMerges;

        // Merges are located while scanning (positions of their JSON strings) and resolved to ids afterwards, in
        // parallel: that is three vocab look-ups per merge, the most expensive part of loading.
        public List<int>? MergeFirst;   // position of "a" (pair form) or of "a b" (legacy form)
        public List<int>? MergeSecond;  // position of "b", or -1 for the legacy form

        public BpeModel Build()
        {
            if (Vocab is null || MergeFirst is null)
            {
                throw new TokenizerFormatException("The BPE model needs both \"vocab\" and \"merges\".", "model.type = BPE", "$.model");
            }
            int count = MergeFirst.Count;
            IdToToken = BpeModel.BuildIdToToken(Vocab);
            var resolved = new long[count];   // (a << 32 | b)
            var newIds = new int[count];
            int chunks = Math.Max(1, Math.Min(Environment.ProcessorCount * 4, count / 4096));
            var errors = new TokenizerFormatException?[chunks];
            Parallel.For(0, chunks, chunk =>
            {
                int from = (int)((long)count * chunk / chunks), to = (int)((long)count * (chunk + 1) / chunks);
                try
                {
                    ResolveRange(from, to, resolved, newIds);
                }
                catch (TokenizerFormatException ex)
                {
                    errors[chunk] = ex;
                }
            });
            foreach (var error in errors) if (error is not null) throw error;

            var merges = BuildPairMap(resolved, newIds);
            return new BpeModel(Vocab, IdToToken, merges, new BpeOptions(UnkToken, Prefix, Suffix, FuseUnk, ByteFallback, IgnoreMerges));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static PairMap BuildPairMap(long[] resolved, int[] newIds)
        {
            var merges = new PairMap(resolved.Length);
            for (int rank = 0; rank < resolved.Length; rank++)
            {
                // Later duplicates overwrite earlier ones, as when the crate collects the merges into a HashMap.
                merges.Set((int)(resolved[rank] >> 32), (int)resolved[rank], ((long)rank << 32) | (uint)newIds[rank]);
            }
            return merges;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ResolveRange(int from, int to, long[] resolved, int[] newIds)
        {
            const string path = "$.model.merges";
            var scanner = new JsonScanner(data, file);
            var lookup = Vocab!;
            var first = new char[256];
            var second = new char[256];
            var merged = new char[512];
            int prefixLength = Prefix?.Length ?? 0;
            var idToToken = IdToToken!;
            int guess = -1;
            for (int rank = from; rank < to; rank++)
            {
                scanner.Position = MergeFirst![rank];
                ReadOnlySpan<char> a, b;
                if (MergeSecond![rank] < 0)
                {
                    // Legacy "a b": exactly one space (the crate splits on ' ' and requires two parts).
                    int lineLength = scanner.ReadStringInto(ref first, path); // may replace `first`: slice afterwards
                    var line = first.AsSpan(0, lineLength);
                    int space = line.IndexOf(' ');
                    if (space < 0 || line[(space + 1)..].IndexOf(' ') >= 0)
                    {
                        throw new TokenizerFormatException($"Merge #{rank} is not of the form \"a b\".", "model.merges", $"{path}[{rank}]");
                    }
                    a = line[..space];
                    b = line[(space + 1)..];
                }
                else
                {
                    int aLength = scanner.ReadStringInto(ref first, path); // may replace `first`: slice afterwards
                    scanner.Position = MergeSecond[rank];
                    int bLength = scanner.ReadStringInto(ref second, path);
                    a = first.AsSpan(0, aLength);
                    b = second.AsSpan(0, bLength);
                }
                if (!lookup.TryGetValue(a, out int aId)) throw OutOfVocab(a, rank);
                if (!lookup.TryGetValue(b, out int bId)) throw OutOfVocab(b, rank);
                // The merged token is a + b without b's continuing_subword_prefix.
                int p = Math.Min(prefixLength, b.Length);
                int n = a.Length + b.Length - p;
                if (merged.Length < n) merged = new char[n * 2];
                a.CopyTo(merged);
                b[p..].CopyTo(merged.AsSpan(a.Length));
                // BPE-trained vocabularies usually list merge results in merge order: try the id after the previous
                // result before hashing (a cheap sequential compare instead of a random look-up).
                int newId;
                guess++;
                if ((uint)guess < (uint)idToToken.Length && idToToken[guess] is { } g && g.AsSpan().SequenceEqual(merged.AsSpan(0, n))) newId = guess;
                else if (!lookup.TryGetValue(merged.AsSpan(0, n), out newId)) throw OutOfVocab(merged.AsSpan(0, n), rank);
                guess = newId;
                resolved[rank] = ((long)aId << 32) | (uint)bId;
                newIds[rank] = newId;
            }
        }

        private static TokenizerFormatException OutOfVocab(ReadOnlySpan<char> token, int rank) =>
            new($"Merge #{rank} uses the token '{token.ToString()}', which is not in the vocabulary.", "model.merges", $"$.model.merges[{rank}]");
    }

    private static ModelParts ReadModel(JsonScanner s)
    {
        var parts = new ModelParts(s.Data, s.File);
        string? type = null;
        s.Expect((byte)'{', "$.model");
        if (s.TryConsume((byte)'}')) throw new TokenizerFormatException("The model is empty.", "model", "$.model");
        while (true)
        {
            string name = s.ReadString("$.model").ToString();
            string path = $"$.model.{name}";
            s.Expect((byte)':', path);
            switch (name)
            {
                case "type":
                    type = s.TryConsumeLiteral("null") ? null : s.ReadString(path).ToString();
                    if (type != "BPE")
                    {
                        throw new TokenizerFormatException($"Unsupported model type '{type}'. Supported: BPE.", $"model.type = {type}", path);
                    }
                    break;
                case "dropout":
                    if (!s.TryConsumeLiteral("null"))
                    {
                        var (start, end) = s.SkipValue(path);
                        string text = Encoding.UTF8.GetString(s.Data, start, end - start);
                        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double dropout) || dropout != 0.0)
                        {
                            throw new TokenizerFormatException(
                                "BPE dropout is not supported (it makes tokenization random). Supported: null or 0.", "model.dropout", path);
                        }
                    }
                    break;
                case "unk_token":
                    parts.UnkToken = ReadNullableString(s, path);
                    break;
                case "continuing_subword_prefix":
                    parts.Prefix = ReadNullableString(s, path);
                    break;
                case "end_of_word_suffix":
                    parts.Suffix = ReadNullableString(s, path);
                    break;
                case "fuse_unk":
                    parts.FuseUnk = ReadNullableBool(s, path);
                    break;
                case "byte_fallback":
                    parts.ByteFallback = ReadNullableBool(s, path);
                    break;
                case "ignore_merges":
                    parts.IgnoreMerges = ReadNullableBool(s, path);
                    break;
                case "vocab":
                    parts.Vocab = ReadVocab(s);
                    break;
                case "merges":
                    ReadMerges(s, parts);
                    break;
                default:
                    throw new TokenizerFormatException(
                        $"Unsupported BPE model option \"{name}\". Supported: type, dropout (null), unk_token, continuing_subword_prefix, end_of_word_suffix, fuse_unk, byte_fallback, ignore_merges, vocab, merges.",
                        $"model.{name}", path);
            }
            if (s.TryConsume((byte)',')) continue;
            s.Expect((byte)'}', "$.model");
            break;
        }
        if (type is null && parts.MergeFirst is null)
        {
            throw new TokenizerFormatException("The model has no \"type\" and is not a BPE model. Supported: BPE.", "model.type", "$.model");
        }
        return parts;
    }

    /// <summary>
    /// The largest token id accepted (2^24 − 1; real vocabularies stay under a million): a table is sized by the
    /// largest id, so an id of 2^31 − 1 would overflow it or ask for gigabytes.
    /// </summary>
    internal const int MaxTokenId = (1 << 24) - 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static VocabIndex ReadVocab(JsonScanner s)
    {
        const string path = "$.model.vocab";
        // Rough size guess from the file size avoids most growth steps (a too-large guess only costs memory).
        var vocab = new VocabIndex(Math.Clamp(s.Data.Length / 64, 1024, 1 << 20));
        s.Expect((byte)'{', path);
        if (s.TryConsume((byte)'}')) return vocab;
        while (true)
        {
            var token = s.ReadString(path);
            string key = new(token);
            s.Expect((byte)':', path);
            int id = s.ReadNonNegativeInt(path);
            if (id > MaxTokenId) throw s.Error($"token \"{key}\" has id {id}, more than any vocabulary holds (ids are at most {MaxTokenId:N0})", path);
            vocab.Set(key, id);
            if (s.TryConsume((byte)',')) continue;
            s.Expect((byte)'}', path);
            return vocab;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReadMerges(JsonScanner s, ModelParts parts)
    {
        const string path = "$.model.merges";
        var first = parts.MergeFirst = new List<int>(parts.Vocab?.Count ?? 1024);
        var second = parts.MergeSecond = new List<int>(parts.Vocab?.Count ?? 1024);
        s.Expect((byte)'[', path);
        if (s.TryConsume((byte)']')) return;
        while (true)
        {
            byte next = s.Peek();
            if (next == '"')
            {
                first.Add(s.SkipString(path));
                second.Add(-1);
            }
            else if (next == '[')
            {
                s.Expect((byte)'[', path);
                first.Add(s.SkipString(path));
                s.Expect((byte)',', path);
                second.Add(s.SkipString(path));
                s.Expect((byte)']', path);
            }
            else
            {
                throw new TokenizerFormatException(
                    $"Merge #{first.Count} must be a string \"a b\" or an array of two strings.", "model.merges", $"{path}[{first.Count}]");
            }
            if (s.TryConsume((byte)',')) continue;
            s.Expect((byte)']', path);
            return;
        }
    }

    private static string? ReadNullableString(JsonScanner s, string path) =>
        s.TryConsumeLiteral("null") ? null : s.ReadString(path).ToString();

    private static bool ReadNullableBool(JsonScanner s, string path)
    {
        if (s.TryConsumeLiteral("null") || s.TryConsumeLiteral("false")) return false;
        if (s.TryConsumeLiteral("true")) return true;
        throw new TokenizerFormatException("Expected a boolean or null.", path, path);
    }
}
