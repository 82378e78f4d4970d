namespace LoraShell.Core.Tokenizers;

/// <summary>Finds and loads the tokenizer that belongs to a model.</summary>
public static class TokenizerLoader
{
    /// <summary>File name under which an HF folder written by LoraShell keeps a llama2.c tokenizer.</summary>
    public const string Llama2cFileName = "tokenizer.bin";

    /// <summary>T5's SentencePiece (Unigram) model file.</summary>
    public const string SpieceFileName = "spiece.model";

    /// <summary>Whether a tokenizer.json's model is Unigram (read from its "model" object's "type").</summary>
    static bool IsUnigramJson(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            using var doc = System.Text.Json.JsonDocument.Parse(stream);
            return doc.RootElement.TryGetProperty("model", out var model) && model.ValueKind == System.Text.Json.JsonValueKind.Object
                && model.TryGetProperty("type", out var type) && type.ValueKind == System.Text.Json.JsonValueKind.String && type.GetString() == "Unigram";
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException) { return false; }
    }

    /// <summary>
    /// A tokenizer from a file — <c>tokenizer.json</c> (with the configs beside it), a SentencePiece
    /// <c>.model</c>, a llama2.c <c>.bin</c> — or from a folder holding one of them.
    /// </summary>
    public static ITextTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            return Load(FindBeside(full) ?? throw LoraShellException.NotFound("TokenizerNotFound",
                $"Folder '{full}' holds no tokenizer ({HuggingFaceTextTokenizer.TokenizerFile}, tokenizer.model, {SpieceFileName} or a llama2.c tok*.bin).", full));
        if (!File.Exists(full)) throw LoraShellException.NotFound("TokenizerNotFound", $"Tokenizer file '{full}' does not exist.", full);
        return Path.GetExtension(full).ToLowerInvariant() switch
        {
            ".json" => HuggingFaceTextTokenizer.Load(full),
            ".bin" => Llama2cTokenizer.Load(full),
            ".model" => SentencePieceTokenizer.Load(full),
            _ => throw LoraShellException.InvalidArgument("UnknownTokenizerFormat",
                $"'{full}' is not a known tokenizer file; expected a Hugging Face tokenizer.json, a SentencePiece .model or a llama2.c .bin (or a folder holding one).", full),
        };
    }

    /// <summary>
    /// The tokenizer next to a model: in an HF folder <c>tokenizer.json</c>, <c>tokenizer.model</c>, <c>spiece.model</c>
    /// (T5) or <c>tokenizer.bin</c> (in that order, as transformers prefers the fast tokenizer); next to a llama2.c
    /// checkpoint a <c>tok*.bin</c> file. Null when there is none.
    /// </summary>
    public static string? FindBeside(string modelPath)
    {
        string full = Path.GetFullPath(modelPath);
        string folder = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        // T5 repositories hold spiece.model beside a tokenizer.json converted from it: a Unigram tokenizer.json
        // (which LoraShell does not read) gives way to the SentencePiece file it came from.
        string json = Path.Combine(folder, HuggingFaceTextTokenizer.TokenizerFile), spiece = Path.Combine(folder, SpieceFileName);
        if (File.Exists(json) && File.Exists(spiece) && IsUnigramJson(json)) return spiece;
        foreach (var name in new[] { HuggingFaceTextTokenizer.TokenizerFile, "tokenizer.model", SpieceFileName, Llama2cFileName })
        {
            string candidate = Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }
        return Directory.EnumerateFiles(folder, "tok*.bin").OrderBy(f => f, StringComparer.Ordinal).FirstOrDefault();
    }
}
