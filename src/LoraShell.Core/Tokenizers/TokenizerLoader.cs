namespace LoraShell.Core.Tokenizers;

/// <summary>Finds and loads the tokenizer that belongs to a model.</summary>
public static class TokenizerLoader
{
    /// <summary>File name under which an HF folder written by LoraShell keeps a llama2.c tokenizer.</summary>
    public const string Llama2cFileName = "tokenizer.bin";

    public static ITextTokenizer Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("TokenizerNotFound", $"Tokenizer file '{full}' does not exist.", full);
        return Path.GetExtension(full).ToLowerInvariant() switch
        {
            ".bin" => Llama2cTokenizer.Load(full),
            ".model" => SentencePieceTokenizer.Load(full),
            ".json" => throw LoraShellException.InvalidArgument("TokenizerJsonNotSupported",
                $"'{full}' is a tokenizer.json; LoraShell reads tokenizer.model (SentencePiece) and llama2.c tok*.bin files. Pass -TokenizerPath to one of those.", full),
            _ => throw LoraShellException.InvalidArgument("UnknownTokenizerFormat",
                $"'{full}' is not a known tokenizer file; expected a llama2.c .bin or a SentencePiece .model.", full),
        };
    }

    /// <summary>
    /// The tokenizer next to a model: in an HF folder <c>tokenizer.model</c> or <c>tokenizer.bin</c>;
    /// next to a llama2.c checkpoint a <c>tok*.bin</c> file. Null when there is none.
    /// </summary>
    public static string? FindBeside(string modelPath)
    {
        string full = Path.GetFullPath(modelPath);
        string folder = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        foreach (var name in new[] { "tokenizer.model", Llama2cFileName })
        {
            string candidate = Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }
        var tok = Directory.EnumerateFiles(folder, "tok*.bin").OrderBy(f => f, StringComparer.Ordinal).FirstOrDefault();
        return tok;
    }
}
