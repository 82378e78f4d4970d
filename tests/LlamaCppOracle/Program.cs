// LlamaCppOracle: runs the real llama.cpp (through LLamaSharp) so that tests can compare LoraShell's
// GGUF export/import, tokenizer and forward pass against llama.cpp itself. Test-only; see README.md.
// Prints exactly one JSON object on stdout; diagnostics go to stderr.
using System.Globalization;
using System.Text;
using System.Text.Json;
using LLama.Native;
using LlamaCppOracle;

var options = Options.Parse(args);
var stdout = Console.OpenStandardOutput();
try
{
    Native.Init(options.Flag("verbose"));
    Action<Utf8JsonWriter> result = options.Command switch
    {
        "logits" => Commands.Logits(options),
        "greedy" => Commands.Greedy(options),
        "tokenize" => Commands.Tokenize(options),
        "quantize" => Commands.Quantize(options),
        "metadata" => Commands.Metadata(options),
        "version" => Commands.Version(),
        _ => throw new OracleException(
            $"unknown command '{options.Command}'; expected logits, greedy, tokenize, quantize, metadata or version"),
    };
    using var json = new Utf8JsonWriter(stdout);
    json.WriteStartObject();
    result(json);
    json.WriteEndObject();
    json.Flush();
    stdout.WriteByte((byte)'\n');
    return 0;
}
catch (Exception e)
{
    var log = Native.TakeLog();
    var message = log.Length > 0 && e is not OracleException ? $"{e.Message} (llama.cpp: {log})" : e.Message;
    Console.Error.WriteLine($"LlamaCppOracle: error: {(e is OracleException ? message : e.ToString())}");
    using var json = new Utf8JsonWriter(stdout);
    json.WriteStartObject();
    json.WriteString("error", message);
    json.WriteEndObject();
    json.Flush();
    stdout.WriteByte((byte)'\n');
    return 1;
}

/// <summary>The commands. Each computes everything first, then returns the writer of its JSON fields,
/// so an error never leaves half an object on stdout.</summary>
static class Commands
{
    const int Threads = 2;

    public static Action<Utf8JsonWriter> Logits(Options o)
    {
        var tokens = o.Ints("tokens");
        if (tokens.Length == 0)
            throw new OracleException("--tokens must list at least one token id");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var model = LoadModel(o.Require("model"));
        CheckTokens(model, tokens);
        using var context = CreateContext(model, o, tokens.Length);
        var loaded = clock.Elapsed.TotalMilliseconds;

        // One batch, logits requested for every position.
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Length; i++)
            batch.Add(tokens[i], i, LLamaSeqId.Zero, true);
        Decode(context, batch);
        var logits = new float[tokens.Length][];
        for (var i = 0; i < tokens.Length; i++)
            logits[i] = context.GetLogitsIth(i).ToArray();
        Native.Trace($"load+context {loaded:F0} ms, decode {clock.Elapsed.TotalMilliseconds - loaded:F0} ms ({tokens.Length} tokens)");

        var nVocab = model.Vocab.Count;
        return json =>
        {
            json.WriteNumber("n_vocab", nVocab);
            WriteInts(json, "tokens", tokens);
            json.WriteStartArray("logits");
            foreach (var row in logits)
            {
                json.WriteStartArray();
                foreach (var x in row)
                    WriteFloat(json, x);
                json.WriteEndArray();
            }
            json.WriteEndArray();
        };
    }

    public static Action<Utf8JsonWriter> Greedy(Options o)
    {
        var prompt = o.Ints("tokens");
        if (prompt.Length == 0)
            throw new OracleException("--tokens must list at least one token id");
        var max = o.Has("max") ? o.Ints("max").Single() : 200;
        var stopIds = o.Has("stop-ids") ? o.Ints("stop-ids").ToHashSet() : null;
        using var model = LoadModel(o.Require("model"));
        CheckTokens(model, prompt);
        using var context = CreateContext(model, o, prompt.Length + max);

        var batch = new LLamaBatch();
        for (var i = 0; i < prompt.Length; i++)
            batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        var generated = new List<int>();
        var text = new List<byte>();
        var piece = new byte[256];
        for (var pos = prompt.Length; generated.Count < max; pos++)
        {
            Decode(context, batch);
            var next = ArgMax(context.GetLogitsIth(batch.TokenCount - 1)); // first maximum, as llama.cpp's greedy sampler
            var stop = stopIds?.Contains(next) ?? ((LLamaToken)next).IsEndOfGeneration(model.Vocab);
            if (stop)
                break;
            generated.Add(next);
            var n = (int)model.TokenToSpan(next, piece, lstrip: 0, special: false);
            if (n > piece.Length)
                n = (int)model.TokenToSpan(next, piece = new byte[n], lstrip: 0, special: false);
            text.AddRange(piece.AsSpan(0, n));
            batch.Clear();
            batch.Add(next, pos, LLamaSeqId.Zero, true);
        }
        var decoded = Encoding.UTF8.GetString(text.ToArray());
        return json =>
        {
            WriteInts(json, "tokens", generated);
            json.WriteString("text", decoded);
        };
    }

    public static Action<Utf8JsonWriter> Tokenize(Options o)
    {
        var file = o.Require("text-file");
        if (!File.Exists(file))
            throw new OracleException($"text file not found: {file}");
        // Decoded by hand: File.ReadAllText would drop a leading U+FEFF. Invalid UTF-8 is an error.
        var text = new UTF8Encoding(false, true).GetString(File.ReadAllBytes(file));
        using var model = LoadModel(o.Require("model"), vocabOnly: true);
        var tokens = model.Tokenize(text, o.Flag("add-special"), o.Flag("parse-special"), Encoding.UTF8);
        return json => WriteInts(json, "tokens", tokens.Select(t => (int)t));
    }

    public static Action<Utf8JsonWriter> Quantize(Options o)
    {
        var input = o.Require("in");
        var output = o.Require("out");
        var typeName = o.Require("type");
        if (!File.Exists(input))
            throw new OracleException($"input model not found: {input}");
        // The same call LLamaSharp's LLamaQuantizer makes (llama_model_quantize), with llama-quantize's
        // defaults: the output tensor is quantized too unless --leave-output-tensor.
        var p = LLamaModelQuantizeParams.Default();
        p.ftype = ParseFtype(typeName);
        p.nthread = Threads;
        p.allow_requantize = o.Flag("allow-requantize");
        p.quantize_output_tensor = !o.Flag("leave-output-tensor");
        if (NativeApi.llama_model_quantize(input, output, ref p) != 0)
            throw new OracleException($"llama_model_quantize failed: {Native.TakeLog()}");
        var bytes = new FileInfo(output).Length;
        var ftype = p.ftype.ToString();
        return json =>
        {
            json.WriteString("out", Path.GetFullPath(output));
            json.WriteNumber("bytes", bytes);
            json.WriteString("ftype", ftype);
        };
    }

    public static Action<Utf8JsonWriter> Metadata(Options o)
    {
        using var model = LoadModel(o.Require("model"));
        // llama.cpp keeps scalar keys only (arrays such as tokenizer.ggml.tokens are left out).
        var meta = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < model.MetadataCount; i++)
            if (model.MetadataKeyByIndex(i) is { } key && model.MetadataValueByIndex(i) is { } value)
                meta[Encoding.UTF8.GetString(key.Span)] = Encoding.UTF8.GetString(value.Span);
        var nVocab = model.Vocab.Count;
        var (nParams, size, ftype) = (model.ParameterCount, model.SizeInBytes, model.FileType.ToString());
        var (bos, eos) = (model.Vocab.BOS, model.Vocab.EOS);
        return json =>
        {
            json.WriteString("arch", meta.GetValueOrDefault("general.architecture"));
            json.WriteNumber("n_vocab", nVocab);
            json.WriteNumber("n_params", nParams);
            json.WriteNumber("size_bytes", size);
            json.WriteString("ftype", ftype);
            if (bos is { } b) json.WriteNumber("bos", (int)b); else json.WriteNull("bos");
            if (eos is { } e) json.WriteNumber("eos", (int)e); else json.WriteNull("eos");
            json.WriteStartObject("meta");
            foreach (var (k, v) in meta)
                json.WriteString(k, v);
            json.WriteEndObject();
        };
    }

    public static Action<Utf8JsonWriter> Version()
    {
        var (library, version, commit) = (Native.LibraryPath, Native.GgmlVersion, Native.GgmlCommit);
        // LLamaSharp.dll carries no version of its own (0.0.0.0): take the package version from deps.json.
        var deps = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "LlamaCppOracle.deps.json"));
        var llamaSharp = JsonDocument.Parse(deps).RootElement.GetProperty("libraries").EnumerateObject()
            .Select(p => p.Name).FirstOrDefault(n => n.StartsWith("LLamaSharp/", StringComparison.Ordinal))?["LLamaSharp/".Length..];
        return json =>
        {
            json.WriteString("llamasharp", llamaSharp);
            json.WriteString("ggml_version", version);
            json.WriteString("ggml_commit", commit);
            json.WriteString("library", library);
        };
    }

    // ---- helpers --------------------------------------------------------------------------------

    static SafeLlamaModelHandle LoadModel(string path, bool vocabOnly = false)
    {
        if (!File.Exists(path))
            throw new OracleException($"model file not found: {path}");
        var p = LLamaModelParams.Default();
        p.n_gpu_layers = 0;
        p.vocab_only = vocabOnly;
        try
        {
            var model = SafeLlamaModelHandle.LoadFromFile(path, p);
            Native.TakeLog(); // drop load-time warnings, so a later error message shows only its own
            return model;
        }
        catch (LLama.Exceptions.LoadWeightsFailedException)
        {
            throw new OracleException($"llama.cpp failed to load model {path}: {Native.TakeLog()}");
        }
    }

    /// <summary>A context with room for <paramref name="nTokens"/> in one batch, an F32 KV cache, flash
    /// attention off, 2 threads, and the --lora adapters applied.</summary>
    static SafeLLamaContextHandle CreateContext(SafeLlamaModelHandle model, Options o, int nTokens)
    {
        var p = LLamaContextParams.Default();
        p.n_ctx = (uint)Math.Max(512, nTokens);
        p.n_batch = p.n_ubatch = p.n_ctx;
        p.n_outputs_max = p.n_ctx;
        p.n_seq_max = 1;
        p.n_threads = p.n_threads_batch = Threads;
        p.type_k = p.type_v = GGMLType.GGML_TYPE_F32;
        p.llama_flash_attn_type = LLamaFlashAttentionType.LLAMA_FLASH_ATTENTION_TYPE_DISABLED;
        p.offload_kqv = false;
        SafeLLamaContextHandle context;
        try
        {
            context = SafeLLamaContextHandle.Create(model, p);
        }
        catch (LLama.Exceptions.RuntimeError e)
        {
            throw new OracleException($"{e.Message}: {Native.TakeLog()}");
        }

        var loras = o.All("lora").Select(ParseLora).ToList();
        if (loras.Count > 0)
            Native.SetLoras(context,
                loras.Select(l => Native.LoadLora(model, l.Path)).ToArray(),
                loras.Select(l => l.Scale).ToArray());
        return context;
    }

    static (string Path, float Scale) ParseLora(string spec)
    {
        var colon = spec.LastIndexOf(':');
        if (colon > 0 && float.TryParse(spec[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var scale))
            return (spec[..colon], scale);
        return (spec, 1.0f);
    }

    static void CheckTokens(SafeLlamaModelHandle model, int[] tokens)
    {
        var n = model.Vocab.Count;
        foreach (var t in tokens)
            if (t < 0 || t >= n)
                throw new OracleException($"token id {t} is outside the vocabulary (n_vocab = {n})");
    }

    static void Decode(SafeLLamaContextHandle context, LLamaBatch batch)
    {
        var result = context.Decode(batch);
        if (result != DecodeResult.Ok)
            throw new OracleException($"llama_decode returned {result}: {Native.TakeLog()}");
    }

    static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }

    static LLamaFtype ParseFtype(string name)
    {
        var wanted = name.ToUpperInvariant().Replace('-', '_');
        foreach (var f in Enum.GetValues<LLamaFtype>())
        {
            var n = f.ToString().ToUpperInvariant();
            if (n == wanted || n == "MOSTLY_" + wanted || n == "ALL_" + wanted || n == "LLAMA_FTYPE_MOSTLY_" + wanted)
                return f;
        }
        throw new OracleException($"unknown quantization type '{name}' (e.g. F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K)");
    }

    static void WriteInts(Utf8JsonWriter json, string name, IEnumerable<int> values)
    {
        json.WriteStartArray(name);
        foreach (var v in values)
            json.WriteNumberValue(v);
        json.WriteEndArray();
    }

    /// <summary>Shortest round-trip form (Utf8JsonWriter's default for float); JSON has no NaN or
    /// infinity, so those are written as the strings "NaN", "Infinity", "-Infinity".</summary>
    static void WriteFloat(Utf8JsonWriter json, float x)
    {
        if (float.IsFinite(x))
            json.WriteNumberValue(x);
        else
            json.WriteStringValue(x.ToString(CultureInfo.InvariantCulture));
    }
}

/// <summary>`command --key value --flag ...`; --lora may repeat.</summary>
sealed class Options
{
    public string Command { get; private init; } = "";
    readonly List<(string Key, string? Value)> _items = [];
    static readonly HashSet<string> Flags = ["verbose", "add-special", "parse-special", "allow-requantize", "leave-output-tensor"];

    public static Options Parse(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith("--"))
        {
            Console.Error.WriteLine("""
                usage: LlamaCppOracle <command> [options]   (one JSON object on stdout)
                  logits   --model M.gguf [--lora A.gguf[:SCALE]]... --tokens 1,2,3
                  greedy   --model M.gguf [--lora ...] --tokens 1,2 [--max 200] [--stop-ids 1,2]
                  tokenize --model M.gguf --text-file F [--add-special] [--parse-special]
                  quantize --in A.gguf --out B.gguf --type Q8_0|Q4_0|Q4_K_M|Q6_K|... [--leave-output-tensor] [--allow-requantize]
                  metadata --model M.gguf
                  version
                  (any command) --verbose   pass llama.cpp's log through to stderr
                """);
            Fail("no command given");
        }
        var o = new Options { Command = args[0] };
        for (var i = 1; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--"))
                Fail($"unexpected argument '{args[i]}'");
            var key = args[i][2..];
            if (Flags.Contains(key))
                o._items.Add((key, null));
            else if (i + 1 < args.Length)
                o._items.Add((key, args[++i]));
            else
                Fail($"option --{key} needs a value");
        }
        return o;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    static void Fail(string message)
    {
        Console.Error.WriteLine($"LlamaCppOracle: error: {message}");
        Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = message }));
        Environment.Exit(2);
    }

    public bool Has(string key) => _items.Any(x => x.Key == key);
    public bool Flag(string key) => Has(key);
    public string? Get(string key) => _items.LastOrDefault(x => x.Key == key).Value;
    public IEnumerable<string> All(string key) => _items.Where(x => x.Key == key && x.Value != null).Select(x => x.Value!);
    public string Require(string key) => Get(key) ?? throw new OracleException($"missing --{key}");

    public int[] Ints(string key)
    {
        var text = Require(key);
        try
        {
            return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (FormatException)
        {
            throw new OracleException($"--{key} must be comma-separated integers, got '{text}'");
        }
    }
}
