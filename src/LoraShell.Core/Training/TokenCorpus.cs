using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Training;

/// <summary>A token stream with, per token, whether the model is trained to predict it.</summary>
public sealed class TokenStream
{
    public TokenStream(int[] tokens, bool[] predict)
    {
        Tokens = tokens;
        Predict = predict;
    }
    public int[] Tokens { get; }
    public bool[] Predict { get; }
    public int Length => Tokens.Length;
    public long PredictedCount => Predict.LongCount(p => p);

    public static TokenStream Concat(IEnumerable<TokenStream> parts)
    {
        var list = parts.ToList();
        return new TokenStream(list.SelectMany(p => p.Tokens).ToArray(), list.SelectMany(p => p.Predict).ToArray());
    }
}

/// <summary>
/// Training and validation token streams built from files. Every document is what tokenizer(text)
/// returns (its special tokens included; llama2.c: [BOS] + tokens), its first token never a target;
/// plain text files are one document each; .jsonl lines are {"text": …} documents,
/// {"prompt": …, "completion": …} pairs whose prompt tokens carry no loss, or {"messages": […]}
/// conversations rendered with the chat template whose loss is on the assistant's tokens
/// (<see cref="ChatData"/>); a conversation longer than a training window is cut to one. Without a validation path,
/// the last <c>fraction</c> of the data is held out: of the characters when there is one document,
/// else of the documents. The result is cached under a key of file contents, tokenizer and split, so
/// a second run does not re-tokenize and a changed input never reuses a stale cache.
/// </summary>
public sealed class TokenCorpus
{
    const int CacheVersion = 2;

    public TokenCorpus(TokenStream train, TokenStream validation, IReadOnlyList<string> files, bool fromCache)
    {
        Train = train;
        Validation = validation;
        Files = files;
        FromCache = fromCache;
    }

    public TokenStream Train { get; }
    public TokenStream Validation { get; }
    public IReadOnlyList<string> Files { get; }
    public bool FromCache { get; }

    /// <summary>Expands files, folders (every .txt/.jsonl/.md inside, sorted) and wildcards in the last path segment.</summary>
    public static List<string> ExpandPaths(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var raw in paths)
        {
            string full = Path.GetFullPath(raw);
            if (File.Exists(full)) { files.Add(full); continue; }
            if (Directory.Exists(full))
            {
                var inside = Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories)
                    .Where(f => Path.GetExtension(f).ToLowerInvariant() is ".txt" or ".jsonl" or ".md")
                    .OrderBy(f => f, StringComparer.Ordinal).ToList();
                if (inside.Count == 0) throw LoraShellException.NotFound("NoDataFiles", $"Data folder '{full}' holds no .txt, .md or .jsonl file.", full);
                files.AddRange(inside);
                continue;
            }
            string dir = Path.GetDirectoryName(full)!, pattern = Path.GetFileName(full);
            if ((pattern.Contains('*') || pattern.Contains('?')) && Directory.Exists(dir))
            {
                var matches = Directory.GetFiles(dir, pattern).OrderBy(f => f, StringComparer.Ordinal).ToList();
                if (matches.Count == 0) throw LoraShellException.NotFound("DataPathNotFound", $"Data path '{raw}' matches no file.", raw);
                files.AddRange(matches);
                continue;
            }
            throw LoraShellException.NotFound("DataPathNotFound", $"Data path '{full}' does not exist.", full);
        }
        return files;
    }

    /// <summary>How documents are read: tokenizer, chat loss, and the window a conversation is cut to.</summary>
    sealed record Reading(ITextTokenizer Tokenizer, ChatLoss ChatLoss, int MaxConversationTokens, Action<string>? Log)
    {
        public int Conversations, Truncated;
    }

    public static TokenCorpus Load(IReadOnlyList<string> dataPaths, IReadOnlyList<string>? validationPaths, double fraction,
        ITextTokenizer tokenizer, string? cacheFolder, int sequenceLength = int.MaxValue - 1, ChatLoss chatLoss = ChatLoss.AssistantTurns,
        Action<string>? log = null, Action<TrainingActivity>? activity = null)
    {
        var files = ExpandPaths(dataPaths);
        var validationFiles = validationPaths is null ? null : ExpandPaths(validationPaths);
        var reading = new Reading(tokenizer, chatLoss, sequenceLength + 1, log);
        string key = CacheKey(files, validationFiles, fraction, tokenizer, $"{chatLoss}|{sequenceLength}");
        string? cachePath = cacheFolder is null ? null : Path.Combine(cacheFolder, $"tokens-{key}.bin");
        if (cachePath != null && File.Exists(cachePath))
        {
            var (train, validation) = ReadCache(cachePath);
            return new TokenCorpus(train, validation, files, fromCache: true);
        }

        // Tokenizing a large file takes a while and has no natural fraction: say what is being read.
        long bytes = files.Concat(validationFiles ?? new List<string>()).Sum(f => new FileInfo(f).Length);
        string what = files.Count == 1 ? Path.GetFileName(files[0]) : $"{files.Count} files";
        activity?.Invoke(new TrainingActivity($"Tokenizing {what} ({bytes / 1048576.0:N1} MiB; cached for the next run{(cachePath is null ? " with -OutputPath" : "")})", -1));
        log?.Invoke($"Tokenizing {what} ({bytes:N0} bytes) with the model's tokenizer.");
        TokenStream trainStream, validationStream;
        if (validationFiles != null)
        {
            trainStream = TokenStream.Concat(files.SelectMany(f => Documents(f, reading)));
            validationStream = TokenStream.Concat(validationFiles.SelectMany(f => Documents(f, reading)));
        }
        else if (files.Count == 1 && !IsJsonl(files[0]))
        {
            string text = ReadText(files[0], log);
            int cut = (int)(text.Length * (1 - fraction));
            if (cut > 0 && cut < text.Length && char.IsLowSurrogate(text[cut])) cut++;
            trainStream = Document(tokenizer, null, text[..cut]);
            validationStream = fraction > 0 ? Document(tokenizer, null, text[cut..]) : new TokenStream(Array.Empty<int>(), Array.Empty<bool>());
        }
        else
        {
            var docs = files.SelectMany(f => Documents(f, reading)).ToList();
            int held = fraction > 0 ? Math.Max(1, (int)Math.Round(docs.Count * fraction)) : 0;
            if (held >= docs.Count) throw LoraShellException.InvalidArgument("TooFewDocuments", $"The data holds {docs.Count} document(s); holding out {fraction:P0} for validation leaves none to train on. Pass -ValidationPath.", fraction);
            trainStream = TokenStream.Concat(docs.Take(docs.Count - held));
            validationStream = TokenStream.Concat(docs.Skip(docs.Count - held));
        }
        if (trainStream.PredictedCount == 0)
            throw LoraShellException.InvalidData("EmptyTrainingData", $"The training data ({string.Join(", ", files.Select(Path.GetFileName))}) holds no text to learn from.", files[0]);
        if (reading.Truncated > 0)
            log?.Invoke($"{reading.Truncated} of {reading.Conversations} conversations are longer than one training window ({sequenceLength + 1} tokens) and were cut to it; their later turns are not trained on. Raise -SequenceLength to keep them whole.");
        if (cachePath != null) WriteCache(cachePath, trainStream, validationStream);
        return new TokenCorpus(trainStream, validationStream, files, fromCache: false);
    }

    static bool IsJsonl(string file) => file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A text file's content. NUL bytes mean a binary file (an image, a checkpoint, a corrupt download):
    /// refused, as training on it only teaches noise. Bytes that are not UTF-8 are decoded as U+FFFD and
    /// said so: legal, but usually a file in another encoding.
    /// </summary>
    static string ReadText(string file, Action<string>? warn)
    {
        var bytes = File.ReadAllBytes(file);
        if (bytes.Length == 0) throw LoraShellException.InvalidData("EmptyDataFile", $"Data file '{file}' is empty.", file);
        int nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0)
            throw LoraShellException.InvalidData("DataNotText", $"Data file '{file}' holds a NUL byte at offset {nul}; it looks like a binary file, not text to train on.", file);
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException e)
        {
            warn?.Invoke($"Data file '{file}' is not valid UTF-8 (first bad byte at offset {e.Index}); its invalid bytes were read as U+FFFD. Convert it to UTF-8 if it is in another encoding.");
            return Encoding.UTF8.GetString(bytes);
        }
    }

    /// <summary>
    /// One document: tokenizer(prompt or text) with its special tokens, then the completion's tokens. The
    /// first token is context only (it has nothing before it in its document); prompt tokens carry no loss.
    /// </summary>
    static TokenStream Document(ITextTokenizer tokenizer, string? prompt, string text)
    {
        var tokens = new List<int>(tokenizer.EncodeWithSpecialTokens(prompt ?? text));
        var predict = Enumerable.Repeat(prompt is null, tokens.Count).ToList();
        if (prompt != null)
        {
            var t = tokenizer.Encode(text);
            tokens.AddRange(t);
            predict.AddRange(Enumerable.Repeat(true, t.Count));
        }
        if (predict.Count > 0) predict[0] = false;
        return new TokenStream(tokens.ToArray(), predict.ToArray());
    }

    static TokenStream Conversation(Reading reading, JsonElement record, string where)
    {
        var stream = ChatData.Tokenize(reading.Tokenizer, ChatData.ReadMessages(record, where), reading.ChatLoss, where);
        reading.Conversations++;
        if (stream.Length <= reading.MaxConversationTokens) return stream;
        reading.Truncated++;
        return new TokenStream(stream.Tokens[..reading.MaxConversationTokens], stream.Predict[..reading.MaxConversationTokens]);
    }

    static IEnumerable<TokenStream> Documents(string file, Reading reading)
    {
        var tokenizer = reading.Tokenizer;
        if (!IsJsonl(file)) { yield return Document(tokenizer, null, ReadText(file, reading.Log)); yield break; }
        int lineNumber = 0, count = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string? prompt = null, text;
            string where = $"'{file}' line {lineNumber}";
            JsonElement root;
            try { using var doc = JsonDocument.Parse(line); root = doc.RootElement.Clone(); }
            catch (JsonException e) { throw LoraShellException.InvalidData("InvalidJsonlLine", $"{where} is not valid JSON: {e.Message}", $"{file}:{lineNumber}"); }
            try
            {
                if (root.ValueKind != JsonValueKind.Object) throw new JsonException("not an object");
                if (ChatData.IsConversation(root)) { prompt = null; text = null; }
                else if (root.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String) text = t.GetString()!;
                else if (root.TryGetProperty("prompt", out var p) && p.ValueKind == JsonValueKind.String
                      && root.TryGetProperty("completion", out var c) && c.ValueKind == JsonValueKind.String)
                { prompt = p.GetString()!; text = c.GetString()!; }
                else throw new JsonException("expected {\"text\": …}, {\"prompt\": …, \"completion\": …} with string values, or {\"messages\": […]}");
            }
            catch (JsonException e)
            {
                throw LoraShellException.InvalidData("InvalidJsonlLine", $"{where} is not a usable JSONL record: {e.Message}", $"{file}:{lineNumber}");
            }
            count++;
            yield return text is null ? Conversation(reading, root, where) : Document(tokenizer, prompt, text);
        }
        if (count == 0) throw LoraShellException.InvalidData("EmptyDataFile", $"Data file '{file}' has no records.", file);
    }

    static string CacheKey(List<string> files, List<string>? validation, double fraction, ITextTokenizer tokenizer, string reading)
    {
        using var sha = SHA256.Create();
        void Add(string s) { var b = Encoding.UTF8.GetBytes(s + "\n"); sha.TransformBlock(b, 0, b.Length, null, 0); }
        void AddFile(string f) { using var stream = File.OpenRead(f); Add(Convert.ToHexString(SHA256.HashData(stream))); }
        Add($"v{CacheVersion}|fraction={fraction:R}|tokenizer-type={tokenizer.GetType().Name}|bos={tokenizer.BosId}|{reading}");
        foreach (var f in tokenizer.Files) AddFile(f);
        foreach (var f in files) AddFile(f);
        Add("|validation|");
        foreach (var f in validation ?? new List<string>()) AddFile(f);
        sha.TransformFinalBlock(Array.Empty<byte>(), 0, 0);
        return Convert.ToHexString(sha.Hash!)[..24].ToLowerInvariant();
    }

    static void WriteCache(string path, TokenStream train, TokenStream validation)
    {
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            foreach (var s in new[] { train, validation })
            {
                w.Write(s.Length);
                foreach (var t in s.Tokens) w.Write(t);
                foreach (var p in s.Predict) w.Write(p);
            }
        });
    }

    static (TokenStream, TokenStream) ReadCache(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path));
        TokenStream Read()
        {
            int n = r.ReadInt32();
            var tokens = new int[n];
            for (int i = 0; i < n; i++) tokens[i] = r.ReadInt32();
            var predict = new bool[n];
            for (int i = 0; i < n; i++) predict[i] = r.ReadBoolean();
            return new TokenStream(tokens, predict);
        }
        return (Read(), Read());
    }
}
