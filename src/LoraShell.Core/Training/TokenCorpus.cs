using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Training;

/// <summary>A token stream with, per token, whether the model is trained to predict it and whether it starts a document.</summary>
public sealed class TokenStream
{
    /// <param name="starts">per token, whether a document begins there; null: one document, begun at the first token</param>
    public TokenStream(int[] tokens, bool[] predict, bool[]? starts = null)
    {
        Tokens = tokens;
        Predict = predict;
        Starts = starts ?? tokens.Select((_, i) => i == 0).ToArray();
    }
    public int[] Tokens { get; }
    public bool[] Predict { get; }
    public bool[] Starts { get; }
    public int Length => Tokens.Length;
    public long PredictedCount => Predict.LongCount(p => p);
    public int DocumentCount => Starts.Count(s => s);

    public static TokenStream Concat(IEnumerable<TokenStream> parts)
    {
        var list = parts.ToList();
        return new TokenStream(list.SelectMany(p => p.Tokens).ToArray(), list.SelectMany(p => p.Predict).ToArray(), list.SelectMany(p => p.Starts).ToArray());
    }
}

/// <summary>
/// Training and validation token streams built from files. Every document is what tokenizer(text)
/// returns (its special tokens included; llama2.c: [BOS] + tokens), its first token never a target;
/// plain text files are one document each; .jsonl lines are {"text": …} documents,
/// {"prompt": …, "completion": …} pairs whose prompt tokens carry no loss, or {"messages": […]}
/// conversations rendered with the chat template whose loss is on the assistant's tokens
/// (<see cref="ChatData"/>); a conversation longer than a training window is cut to one (shorter ones are packed
/// whole, see <see cref="BatchSampler"/>). What reading
/// changed or doubts (cut conversations, prompts longer than a window, text that is not UTF-8) is said
/// as a warning, again when the corpus comes from the cache. Without a validation path,
/// the last <c>fraction</c> of the data is held out: of the characters when there is one document,
/// else of the documents. The result is cached under a key of file contents, tokenizer and split, so
/// a second run does not re-tokenize and a changed input never reuses a stale cache.
/// </summary>
public sealed class TokenCorpus
{
    const int CacheVersion = 4; // 4: document starts

    public TokenCorpus(TokenStream train, TokenStream validation, IReadOnlyList<string> files, bool fromCache, IReadOnlyList<string>? warnings = null)
    {
        Train = train;
        Validation = validation;
        Files = files;
        FromCache = fromCache;
        Warnings = warnings ?? Array.Empty<string>();
    }

    public TokenStream Train { get; }
    public TokenStream Validation { get; }
    public IReadOnlyList<string> Files { get; }
    public bool FromCache { get; }
    /// <summary>What reading the data cut or doubted; each was also given to the log's warning channel.</summary>
    public IReadOnlyList<string> Warnings { get; }

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

    /// <summary>How documents are read (tokenizer, chat loss, the window a conversation is cut to), and what reading them found.</summary>
    sealed record Reading(ITextTokenizer Tokenizer, ChatLoss ChatLoss, int MaxConversationTokens)
    {
        public int Conversations, Truncated, TruncatedToNothing, Pairs, LongPrompts;
        public bool SawText;
        public readonly List<string> Warnings = new();
        public void Warn(string line) => Warnings.Add(line);

        /// <summary>One warning per kind of cut, counted over every file, so a large set says it once.</summary>
        public void SummarizeCuts(int sequenceLength)
        {
            if (Truncated > 0)
                Warn($"{Truncated} of {Conversations} conversations are longer than one training window ({MaxConversationTokens} tokens) and were cut to it; their later turns are not trained on" +
                     (TruncatedToNothing > 0 ? $", and {TruncatedToNothing} of them keep no assistant token at all, so nothing of them is trained on" : "") +
                     ". Raise -SequenceLength to keep them whole.");
            if (LongPrompts > 0)
                Warn($"{LongPrompts} of {Pairs} prompt/completion records have a prompt of at least one window (-SequenceLength {sequenceLength} tokens); their completions are never seen with the whole prompt before them, and a window may hold prompt only. Raise -SequenceLength or shorten the prompts.");
        }
    }

    public static TokenCorpus Load(IReadOnlyList<string> dataPaths, IReadOnlyList<string>? validationPaths, double fraction,
        ITextTokenizer tokenizer, string? cacheFolder, int sequenceLength = int.MaxValue - 1, ChatLoss chatLoss = ChatLoss.AssistantTurns,
        RunLog? log = null, Action<TrainingActivity>? activity = null)
    {
        var files = ExpandPaths(dataPaths);
        var validationFiles = validationPaths is null ? null : ExpandPaths(validationPaths);
        var reading = new Reading(tokenizer, chatLoss, sequenceLength + 1);
        string key = CacheKey(files, validationFiles, fraction, tokenizer, $"{chatLoss}|{sequenceLength}");
        string? cachePath = cacheFolder is null ? null : Path.Combine(cacheFolder, $"tokens-{key}.bin");
        if (cachePath != null && File.Exists(cachePath))
        {
            var (train, validation, warnings) = ReadCache(cachePath);
            foreach (var w in warnings) log?.Warn(w);
            return new TokenCorpus(train, validation, files, fromCache: true, warnings);
        }

        // Tokenizing a large file takes a while and has no natural fraction: say what is being read.
        long bytes = files.Concat(validationFiles ?? new List<string>()).Sum(f => new FileInfo(f).Length);
        string what = files.Count == 1 ? Path.GetFileName(files[0]) : $"{files.Count} files";
        activity?.Invoke(new TrainingActivity($"Tokenizing {what} ({bytes / 1048576.0:N1} MiB; cached for the next run{(cachePath is null ? " with -OutputPath" : "")})", -1));
        log?.Info($"Tokenizing {what} ({bytes:N0} bytes) with the model's tokenizer.");
        TokenStream trainStream, validationStream;
        if (validationFiles != null)
        {
            trainStream = TokenStream.Concat(files.SelectMany(f => Documents(f, reading)));
            validationStream = TokenStream.Concat(validationFiles.SelectMany(f => Documents(f, reading)));
        }
        else if (files.Count == 1 && !IsJsonl(files[0]))
        {
            string text = ReadText(files[0], reading);
            int cut = TextCut(text, fraction);
            trainStream = Document(reading, null, text[..cut]);
            validationStream = fraction > 0 ? Document(reading, null, text[cut..]) : new TokenStream(Array.Empty<int>(), Array.Empty<bool>());
        }
        else
        {
            var docs = files.SelectMany(f => Documents(f, reading)).ToList();
            int held = HeldOutDocuments(docs.Count, fraction);
            trainStream = TokenStream.Concat(docs.Take(docs.Count - held));
            validationStream = TokenStream.Concat(docs.Skip(docs.Count - held));
        }
        if (trainStream.PredictedCount == 0 || !reading.SawText)
            throw LoraShellException.InvalidData("EmptyTrainingData",
                $"The training data ({string.Join(", ", files.Select(Path.GetFileName))}) holds no text to learn from{(reading.SawText ? "" : ": only whitespace")}.", files[0]);
        reading.SummarizeCuts(sequenceLength);
        foreach (var w in reading.Warnings) log?.Warn(w);
        if (cachePath != null) WriteCache(cachePath, trainStream, validationStream, reading.Warnings);
        return new TokenCorpus(trainStream, validationStream, files, fromCache: false, reading.Warnings);
    }

    /// <summary>
    /// Where one text file's validation part starts: the last <paramref name="fraction"/> of its characters
    /// (never between the halves of a surrogate pair).
    /// </summary>
    public static int TextCut(string text, double fraction)
    {
        int cut = (int)(text.Length * (1 - fraction));
        if (cut > 0 && cut < text.Length && char.IsLowSurrogate(text[cut])) cut++;
        return cut;
    }

    /// <summary>How many of the last documents are held out for validation (at least one when the fraction is positive); refuses a split that leaves none to train on.</summary>
    public static int HeldOutDocuments(int documents, double fraction)
    {
        int held = fraction > 0 ? Math.Max(1, (int)Math.Round(documents * fraction)) : 0;
        if (held >= documents) throw LoraShellException.InvalidArgument("TooFewDocuments", $"The data holds {documents} document(s); holding out {fraction:P0} for validation leaves none to train on. Pass -ValidationPath.", fraction);
        return held;
    }

    public static bool IsJsonl(string file) => file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    static string ReadText(string file, Reading reading) => TextFile.Read(file, reading.Warn);

    /// <summary>
    /// One document: tokenizer(prompt or text) with its special tokens, then the completion's tokens. The
    /// first token is context only (it has nothing before it in its document); prompt tokens carry no loss.
    /// </summary>
    static TokenStream Document(Reading reading, string? prompt, string text)
    {
        var tokenizer = reading.Tokenizer;
        reading.SawText |= !string.IsNullOrWhiteSpace(text) || !string.IsNullOrWhiteSpace(prompt);
        var tokens = new List<int>(tokenizer.EncodeWithSpecialTokens(prompt ?? text));
        if (prompt != null)
        {
            reading.Pairs++;
            if (tokens.Count >= reading.MaxConversationTokens - 1) reading.LongPrompts++;
        }
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
        reading.SawText = true;
        if (stream.Length <= reading.MaxConversationTokens) return stream;
        reading.Truncated++;
        var cut = new TokenStream(stream.Tokens[..reading.MaxConversationTokens], stream.Predict[..reading.MaxConversationTokens]);
        if (cut.PredictedCount == 0 && stream.PredictedCount > 0) reading.TruncatedToNothing++;
        return cut;
    }

    static IEnumerable<TokenStream> Documents(string file, Reading reading)
        => DataRecords.Read(file, reading.Warn).Select(r => r.IsConversation ? Conversation(reading, r.Record!.Value, r.Where) : Document(reading, r.Prompt, r.Text!));

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

    static void WriteCache(string path, TokenStream train, TokenStream validation, IReadOnlyList<string> warnings)
    {
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            foreach (var s in new[] { train, validation })
            {
                w.Write(s.Length);
                foreach (var t in s.Tokens) w.Write(t);
                foreach (var p in s.Predict) w.Write(p);
                foreach (var b in s.Starts) w.Write(b);
            }
            w.Write(warnings.Count);
            foreach (var line in warnings) w.Write(line);
        });
    }

    static (TokenStream, TokenStream, IReadOnlyList<string>) ReadCache(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path));
        TokenStream Read()
        {
            int n = r.ReadInt32();
            var tokens = new int[n];
            for (int i = 0; i < n; i++) tokens[i] = r.ReadInt32();
            var predict = new bool[n];
            for (int i = 0; i < n; i++) predict[i] = r.ReadBoolean();
            var starts = new bool[n];
            for (int i = 0; i < n; i++) starts[i] = r.ReadBoolean();
            return new TokenStream(tokens, predict, starts);
        }
        var train = Read();
        var validation = Read();
        var warnings = new string[r.ReadInt32()];
        for (int i = 0; i < warnings.Length; i++) warnings[i] = r.ReadString();
        return (train, validation, warnings);
    }
}
