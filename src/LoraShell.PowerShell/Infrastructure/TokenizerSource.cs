using System.Collections.Concurrent;
using LoraShell.Core;
using LoraShell.Core.Tokenizers;

namespace LoraShell.PowerShell;

/// <summary>
/// The tokenizer a text cmdlet works with: the piped model's, or one loaded from -TokenizerPath (a
/// tokenizer.json, tokenizer.model or tok*.bin file, or a folder holding one). Loaded tokenizers are
/// kept per file and write time, so a pipeline over many texts reads a large tokenizer.json once.
/// </summary>
static class TokenizerSource
{
    static readonly ConcurrentDictionary<(string, DateTime), ITextTokenizer> Loaded = new();

    public static ITextTokenizer Resolve(LoraModel? model, string? resolvedPath)
    {
        if (model is not null) return model.Loaded.RequireTokenizer();
        if (resolvedPath is null)
            throw LoraShellException.InvalidArgument("NoTokenizerGiven", "Pipe in a model (Import-LoraModel) or give -TokenizerPath (a tokenizer.json, tokenizer.model or tok*.bin file, or a folder holding one).");
        string file = Directory.Exists(resolvedPath) ? TokenizerLoader.FindBeside(resolvedPath) ?? resolvedPath : resolvedPath;
        var stamp = File.Exists(file) ? File.GetLastWriteTimeUtc(file) : DateTime.MinValue;
        return Loaded.GetOrAdd((Path.GetFullPath(file), stamp), _ => TokenizerLoader.Load(resolvedPath));
    }
}
