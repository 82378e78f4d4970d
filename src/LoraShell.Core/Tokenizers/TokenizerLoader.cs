namespace LoraShell.Core.Tokenizers;

/// <summary>Finds and loads the tokenizer that belongs to a model.</summary>
public static class TokenizerLoader
{
    /// <summary>File name under which an HF folder written by LoraShell keeps a llama2.c tokenizer.</summary>
    public const string Llama2cFileName = "tokenizer.bin";

    /// <summary>
    /// A tokenizer from a file — <c>tokenizer.json</c> (with the configs beside it), a SentencePiece
    /// <c>.model</c>, a llama2.c <c>.bin</c> — or from a folder holding one of them.
    /// </summary>
    public static ITextTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            return Load(FindBeside(full) ?? throw LoraShellException.NotFound("TokenizerNotFound",
                $"Folder '{full}' holds no tokenizer ({HuggingFaceTextTokenizer.TokenizerFile}, tokenizer.model or a llama2.c tok*.bin).", full));
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
    /// The tokenizer next to a model: in an HF folder <c>tokenizer.json</c>, <c>tokenizer.model</c> or
    /// <c>tokenizer.bin</c> (in that order, as transformers prefers the fast tokenizer); next to a llama2.c
    /// checkpoint a <c>tok*.bin</c> file. Null when there is none.
    /// </summary>
    public static string? FindBeside(string modelPath)
    {
        string full = Path.GetFullPath(modelPath);
        string folder = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        foreach (var name in new[] { HuggingFaceTextTokenizer.TokenizerFile, "tokenizer.model", Llama2cFileName })
        {
            string candidate = Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }
        return Directory.EnumerateFiles(folder, "tok*.bin").OrderBy(f => f, StringComparer.Ordinal).FirstOrDefault();
    }
}
