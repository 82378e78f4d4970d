using System.Text.Json;
using LoraShell.Core.Tokenizers.HuggingFace.Decoders;
using LoraShell.Core.Tokenizers.HuggingFace.Normalization;
using LoraShell.Core.Tokenizers.HuggingFace.Normalizers;
using LoraShell.Core.Tokenizers.HuggingFace.PostProcessors;
using LoraShell.Core.Tokenizers.HuggingFace.PreTokenizers;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Loading;

/// <summary>
/// Builds normalizers, pre-tokenizers, post-processors and decoders from their tokenizer.json objects. Anything
/// unknown — a type or an option — is refused with a <see cref="TokenizerFormatException"/> naming it and what is
/// supported.
/// </summary>
internal static class ComponentFactory
{
    private const string SupportedNormalizers = "Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip, StripAccents, ByteLevel";
    private const string SupportedPreTokenizers = "Sequence, Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation, BertPreTokenizer, CharDelimiterSplit";
    private const string SupportedPostProcessors = "TemplateProcessing, ByteLevel, Sequence, RobertaProcessing, BertProcessing";
    private const string SupportedDecoders = "ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, WordPiece, BPEDecoder";

    public static INormalizer BuildNormalizer(JsonCursor c)
    {
        string type = c.RequireType("normalizer");
        c = c.WithComponent($"normalizer.type = {type}");
        switch (type)
        {
            case "Sequence":
                c.AllowOnly("normalizers");
                return new SequenceNormalizer(c.Items("normalizers").Select(BuildNormalizer).ToList());
            case "NFC":
                c.AllowOnly();
                return new UnicodeNormalizer(NormalizationForm.Nfc);
            case "NFD":
                c.AllowOnly();
                return new UnicodeNormalizer(NormalizationForm.Nfd);
            case "NFKC":
                c.AllowOnly();
                return new UnicodeNormalizer(NormalizationForm.Nfkc);
            case "NFKD":
                c.AllowOnly();
                return new UnicodeNormalizer(NormalizationForm.Nfkd);
            case "Prepend":
                c.AllowOnly("prepend");
                return new PrependNormalizer(c.GetString("prepend"));
            case "Replace":
                c.AllowOnly("pattern", "content");
                return new ReplaceNormalizer(BuildPattern(c.Get("pattern")), c.GetString("content"));
            case "Lowercase":
                c.AllowOnly();
                return new LowercaseNormalizer();
            case "Strip":
                c.AllowOnly("strip_left", "strip_right");
                return new StripNormalizer(c.GetBool("strip_left", true), c.GetBool("strip_right", true));
            case "StripAccents":
                c.AllowOnly();
                return new StripAccentsNormalizer();
            case "ByteLevel":
                c.AllowOnly();
                return new ByteLevelNormalizer();
            default:
                throw c.Error($"Unsupported normalizer type '{type}'. Supported: {SupportedNormalizers}.");
        }
    }

    public static IPreTokenizer BuildPreTokenizer(JsonCursor c)
    {
        string type = c.RequireType("pre_tokenizer");
        c = c.WithComponent($"pre_tokenizer.type = {type}");
        switch (type)
        {
            case "Sequence":
                c.AllowOnly("pretokenizers");
                return new SequencePreTokenizer(c.Items("pretokenizers").Select(BuildPreTokenizer).ToList());
            case "Split":
                c.AllowOnly("pattern", "behavior", "invert");
                return new SplitPreTokenizer(BuildPattern(c.Get("pattern")), BuildBehavior(c.Get("behavior")), c.GetBool("invert", false));
            case "ByteLevel":
                c.AllowOnly("add_prefix_space", "trim_offsets", "use_regex");
                return new ByteLevelPreTokenizer(c.GetBool("add_prefix_space", true), c.GetBool("use_regex", true));
            case "Metaspace":
            {
                c.AllowOnly("replacement", "add_prefix_space", "prepend_scheme", "split", "str_rep");
                var (replacement, scheme) = ReadMetaspace(c);
                return new MetaspacePreTokenizer(replacement, scheme, c.GetBool("split", true));
            }
            case "Whitespace":
                c.AllowOnly();
                return new WhitespacePreTokenizer();
            case "WhitespaceSplit":
                c.AllowOnly();
                return new CharSplitPreTokenizer(UnicodeProps.IsWhiteSpace, SplitBehavior.Removed);
            case "Digits":
                c.AllowOnly("individual_digits");
                return new CharSplitPreTokenizer(UnicodeProps.IsNumeric,
                    c.GetBool("individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous);
            case "Punctuation":
                c.AllowOnly("behavior");
                return new CharSplitPreTokenizer(UnicodeProps.IsPunctuation,
                    c.Has("behavior") ? BuildBehavior(c.Get("behavior")) : SplitBehavior.Isolated);
            case "BertPreTokenizer":
                c.AllowOnly();
                return new BertPreTokenizer();
            case "CharDelimiterSplit":
            {
                c.AllowOnly("delimiter");
                int delimiter = c.GetChar("delimiter");
                return new CharSplitPreTokenizer(cp => cp == delimiter, SplitBehavior.Removed);
            }
            default:
                throw c.Error($"Unsupported pre_tokenizer type '{type}'. Supported: {SupportedPreTokenizers}.");
        }
    }

    public static IPostProcessor BuildPostProcessor(JsonCursor c)
    {
        string type = c.RequireType("post_processor");
        c = c.WithComponent($"post_processor.type = {type}");
        switch (type)
        {
            case "Sequence":
                c.AllowOnly("processors");
                return new SequencePostProcessor(c.Items("processors").Select(BuildPostProcessor).ToList());
            case "ByteLevel":
                c.AllowOnly("add_prefix_space", "trim_offsets", "use_regex");
                return new ByteLevelPostProcessor(c.GetBool("trim_offsets", true), c.GetBool("add_prefix_space", true));
            case "TemplateProcessing":
                c.AllowOnly("single", "pair", "special_tokens");
                return BuildTemplate(c);
            case "RobertaProcessing":
                c.AllowOnly("sep", "cls", "trim_offsets", "add_prefix_space");
                return new RobertaPostProcessor(ReadTokenPair(c.Get("cls")), ReadTokenPair(c.Get("sep")),
                    c.GetBool("trim_offsets", true), c.GetBool("add_prefix_space", true));
            case "BertProcessing":
                c.AllowOnly("sep", "cls");
                return new BertPostProcessor(ReadTokenPair(c.Get("cls")), ReadTokenPair(c.Get("sep")));
            default:
                throw c.Error($"Unsupported post_processor type '{type}'. Supported: {SupportedPostProcessors}.");
        }
    }

    public static IDecoder BuildDecoder(JsonCursor c)
    {
        string type = c.RequireType("decoder");
        c = c.WithComponent($"decoder.type = {type}");
        switch (type)
        {
            case "Sequence":
                c.AllowOnly("decoders");
                return new SequenceDecoder(c.Items("decoders").Select(BuildDecoder).ToList());
            case "ByteLevel":
                c.AllowOnly("add_prefix_space", "trim_offsets", "use_regex");
                return new ByteLevelDecoder();
            case "Replace":
                c.AllowOnly("pattern", "content");
                return new ReplaceDecoder(BuildPattern(c.Get("pattern")), c.GetString("content"));
            case "ByteFallback":
                c.AllowOnly();
                return new ByteFallbackDecoder();
            case "Fuse":
                c.AllowOnly();
                return new FuseDecoder();
            case "Strip":
                c.AllowOnly("content", "start", "stop");
                return new StripDecoder(c.GetChar("content"), c.GetInt("start", 0), c.GetInt("stop", 0));
            case "Metaspace":
            {
                c.AllowOnly("replacement", "add_prefix_space", "prepend_scheme", "split", "str_rep");
                var (replacement, scheme) = ReadMetaspace(c);
                return new MetaspaceDecoder(char.ConvertToUtf32(replacement, 0), scheme);
            }
            case "WordPiece":
                c.AllowOnly("prefix", "cleanup");
                return new WordPieceDecoder(c.GetStringOrNull("prefix") ?? "##", c.GetBool("cleanup", true));
            case "BPEDecoder":
                c.AllowOnly("suffix");
                return new BpeDecoder(c.GetStringOrNull("suffix") ?? "</w>");
            default:
                throw c.Error($"Unsupported decoder type '{type}'. Supported: {SupportedDecoders}.");
        }
    }

    /// <summary><c>{"String": "..."}</c> (a literal) or <c>{"Regex": "..."}</c> (Oniguruma syntax).</summary>
    private static SplitPattern BuildPattern(JsonCursor c)
    {
        if (c.Element.ValueKind != JsonValueKind.Object) throw c.Error("pattern must be {\"String\": ...} or {\"Regex\": ...}.");
        if (c.Element.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String)
        {
            string literal = s.GetString()!;
            if (literal.Length == 0) throw c.Error("An empty String pattern is not supported.");
            return new LiteralPattern(literal);
        }
        if (c.Element.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
        {
            return new RegexPattern(CodePointRegex.Create(r.GetString()!, c.Component, c.Path));
        }
        throw c.Error("pattern must be {\"String\": ...} or {\"Regex\": ...}.");
    }

    private static SplitBehavior BuildBehavior(JsonCursor c)
    {
        string? value = c.Element.ValueKind == JsonValueKind.String ? c.Element.GetString() : null;
        return value switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw c.Error($"Unsupported split behavior '{value}'. Supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous."),
        };
    }

    /// <summary>
    /// Metaspace's replacement and prepend scheme, including the legacy <c>add_prefix_space</c>: false means "never"
    /// and contradicts any other declared scheme.
    /// </summary>
    private static (string Replacement, PrependScheme Scheme) ReadMetaspace(JsonCursor c)
    {
        int replacement = c.GetChar("replacement");
        PrependScheme? scheme = null;
        if (c.GetStringOrNull("prepend_scheme") is { } s)
        {
            scheme = s switch
            {
                "always" => PrependScheme.Always,
                "first" => PrependScheme.First,
                "never" => PrependScheme.Never,
                _ => throw c.Get("prepend_scheme").Error($"Unsupported prepend_scheme '{s}'. Supported: always, first, never."),
            };
        }
        if (c.Has("add_prefix_space") && !c.GetBool("add_prefix_space", true))
        {
            if (scheme is not null && scheme != PrependScheme.Never)
            {
                throw c.Error("add_prefix_space=false contradicts the declared prepend_scheme.");
            }
            scheme = PrependScheme.Never;
        }
        return (char.ConvertFromUtf32(replacement), scheme ?? PrependScheme.Always);
    }

    /// <summary>Roberta/Bert <c>["token", id]</c>.</summary>
    private static (string Token, int Id) ReadTokenPair(JsonCursor c)
    {
        var e = c.Element;
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 2 || e[0].ValueKind != JsonValueKind.String
            || e[1].ValueKind != JsonValueKind.Number || !e[1].TryGetInt32(out int id))
        {
            throw c.Error("Expected [\"token\", id].");
        }
        return (e[0].GetString()!, id);
    }

    /// <summary>TemplateProcessing: the single-sequence template and the special tokens it references.</summary>
    private static IPostProcessor BuildTemplate(JsonCursor c)
    {
        var specials = new Dictionary<string, (int[] Ids, string[] Tokens)>(StringComparer.Ordinal);
        if (c.GetOptional("special_tokens") is { } st)
        {
            if (st.Element.ValueKind != JsonValueKind.Object) throw st.Error("special_tokens must be an object.");
            foreach (var p in st.Element.EnumerateObject())
            {
                var entry = new JsonCursor(p.Value, $"{st.Path}.{p.Name}", c.Component);
                entry.AllowOnly("id", "ids", "tokens");
                var ids = entry.Items("ids").Select(i => i.Element.TryGetInt32(out int v) ? v : throw i.Error("ids must be integers.")).ToArray();
                var tokens = entry.Items("tokens").Select(t => t.Element.ValueKind == JsonValueKind.String ? t.Element.GetString()! : throw t.Error("tokens must be strings.")).ToArray();
                if (ids.Length != tokens.Length) throw entry.Error("ids and tokens must have the same length.");
                specials[entry.Has("id") ? entry.GetString("id") : p.Name] = (ids, tokens);
            }
        }

        var single = c.Get("single");
        var pieces = new List<TemplatePiece>();
        int sequences = 0;
        foreach (var (isSequence, id) in ReadTemplatePieces(single))
        {
            if (isSequence)
            {
                if (id != "A") throw single.Error($"The single template references ${id}; only $A is supported in a single-sequence template.");
                sequences++;
                pieces.Add(new TemplatePiece(true, [], []));
            }
            else
            {
                if (!specials.TryGetValue(id, out var sp)) throw single.Error($"The template uses special token '{id}', which special_tokens does not define.");
                pieces.Add(new TemplatePiece(false, sp.Ids, sp.Tokens));
            }
        }
        if (sequences != 1) throw single.Error("The single template must contain $A exactly once.");
        return new TemplatePostProcessor(pieces);
    }

    private static IEnumerable<(bool IsSequence, string Id)> ReadTemplatePieces(JsonCursor c)
    {
        if (c.Element.ValueKind == JsonValueKind.String)
        {
            foreach (var part in c.Element.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)) yield return ParsePieceString(part, c);
            yield break;
        }
        if (c.Element.ValueKind != JsonValueKind.Array) throw c.Error("A template must be an array of pieces or a string.");
        foreach (var item in c.Element.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String)
            {
                yield return ParsePieceString(item.GetString()!, c);
                continue;
            }
            if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("Sequence", out var seq))
            {
                yield return (true, seq.TryGetProperty("id", out var sid) ? sid.GetString() ?? "A" : "A");
                continue;
            }
            if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("SpecialToken", out var sp) && sp.TryGetProperty("id", out var tid))
            {
                yield return (false, tid.GetString()!);
                continue;
            }
            throw c.Error("A template piece must be {\"Sequence\": ...} or {\"SpecialToken\": ...}.");
        }
    }

    /// <summary>String form of a piece: <c>$A</c>, <c>$B</c>, <c>$</c>, <c>$A:1</c>, <c>[CLS]</c>, <c>[CLS]:0</c>.</summary>
    private static (bool, string) ParsePieceString(string piece, JsonCursor c)
    {
        int colon = piece.LastIndexOf(':');
        string body = colon > 0 && int.TryParse(piece.AsSpan(colon + 1), out _) ? piece[..colon] : piece;
        if (body.StartsWith('$'))
        {
            string rest = body[1..];
            return rest switch
            {
                "" or "A" or "a" => (true, "A"),
                "B" or "b" => (true, "B"),
                _ when int.TryParse(rest, out _) => (true, rest == "0" ? "A" : "B"),
                _ => throw c.Error($"Cannot parse template piece '{piece}'."),
            };
        }
        return (false, body);
    }
}
