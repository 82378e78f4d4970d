using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Export;

/// <summary>
/// An Ollama <c>Modelfile</c> for an exported GGUF: <c>FROM</c> the model file, <c>ADAPTER</c> for a
/// GGUF LoRA adapter applied on top, and a <c>stop</c> parameter per end-of-turn token. No TEMPLATE:
/// Ollama takes the chat template from the GGUF's <c>tokenizer.chat_template</c>. Paths are written
/// relative to the Modelfile's folder when they lie inside it, so the folder can be moved whole.
/// </summary>
public static class OllamaModelfile
{
    public const string Extension = ".Modelfile";

    /// <summary>The Modelfile path that belongs to a GGUF file: same folder, same base name.</summary>
    public static string PathFor(string ggufPath) => Path.ChangeExtension(Path.GetFullPath(ggufPath), null) + Extension;

    public static string Render(string modelfilePath, string from, string? adapter, IEnumerable<string> stopStrings)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(modelfilePath))!;
        var lines = new List<string>
        {
            "# Written by LoraShell. Create the model with: ollama create NAME -f " + Path.GetFileName(modelfilePath),
            $"FROM {Relative(folder, from)}",
        };
        if (adapter is not null) lines.Add($"ADAPTER {Relative(folder, adapter)}");
        foreach (var stop in stopStrings.Where(s => s.Length > 0).Distinct())
            lines.Add($"PARAMETER stop {Quote(stop)}");
        return string.Join("\n", lines) + "\n";
    }

    /// <summary>The strings generation should stop at: the tokenizer's stop tokens as text.</summary>
    public static IEnumerable<string> StopStrings(ITextTokenizer? tokenizer)
    {
        if (tokenizer is null) yield break;
        foreach (int id in tokenizer.StopIds)
        {
            string text;
            try { text = tokenizer.Tokenize(tokenizer.Decode(new[] { id }), false) is [{ Special: true } t] ? t.Token : tokenizer.Decode(new[] { id }); }
            catch (LoraShellException) { continue; }
            // llama2.c's BOS/EOS decode to nothing printable; Ollama stops at end of generation anyway.
            if (text.Trim().Length > 0 && !text.Contains('\n')) yield return text;
        }
    }

    static string Relative(string folder, string path)
    {
        string full = Path.GetFullPath(path);
        string rel = Path.GetRelativePath(folder, full);
        return rel.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(rel) ? Quote(full) : "./" + rel.Replace('\\', '/');
    }

    static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
