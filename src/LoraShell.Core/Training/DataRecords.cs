using System.Text.Json;
using LoraShell.Core.IO;

namespace LoraShell.Core.Training;

/// <summary>
/// One document of the training data: a whole text file, or one JSONL line that is {"text"},
/// {"prompt", "completion"}, {"input", "target"} (read as prompt and completion) or {"messages": […]}
/// (<see cref="Record"/> keeps the line as parsed).
/// </summary>
public sealed record DataRecord(string Where, string? Text, string? Prompt, JsonElement? Record)
{
    public bool IsConversation => Record is { } r && ChatData.IsConversation(r);
}

/// <summary>Reads data files record by record, with the one set of rules (and errors) every consumer shares.</summary>
public static class DataRecords
{
    /// <summary>The records of one file, in order; a malformed line is refused with its file and line number.</summary>
    public static IEnumerable<DataRecord> Read(string file, Action<string>? warn)
    {
        if (!TokenCorpus.IsJsonl(file)) { yield return new DataRecord($"'{file}'", TextFile.Read(file, warn), null, null); yield break; }
        int lineNumber = 0, count = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string? prompt = null, text = null;
            string where = $"'{file}' line {lineNumber}";
            JsonElement root;
            try { using var doc = JsonDocument.Parse(line); root = doc.RootElement.Clone(); }
            catch (JsonException e) { throw LoraShellException.InvalidData("InvalidJsonlLine", $"{where} is not valid JSON: {e.Message}", $"{file}:{lineNumber}"); }
            try
            {
                if (root.ValueKind != JsonValueKind.Object) throw new JsonException("not an object");
                if (ChatData.IsConversation(root)) { }
                else if (root.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String) text = t.GetString()!;
                else if (root.TryGetProperty("prompt", out var p) && p.ValueKind == JsonValueKind.String
                      && root.TryGetProperty("completion", out var c) && c.ValueKind == JsonValueKind.String)
                { prompt = p.GetString()!; text = c.GetString()!; }
                // Text-to-text pairs (T5's data): the input is what a decoder-only model reads as the prompt.
                else if (root.TryGetProperty("input", out var i) && i.ValueKind == JsonValueKind.String
                      && root.TryGetProperty("target", out var g) && g.ValueKind == JsonValueKind.String)
                { prompt = i.GetString()!; text = g.GetString()!; }
                else throw new JsonException("expected {\"text\": …}, {\"prompt\": …, \"completion\": …}, {\"input\": …, \"target\": …} with string values, or {\"messages\": […]}");
            }
            catch (JsonException e)
            {
                throw LoraShellException.InvalidData("InvalidJsonlLine", $"{where} is not a usable JSONL record: {e.Message}", $"{file}:{lineNumber}");
            }
            count++;
            yield return new DataRecord(where, text, prompt, root);
        }
        if (count == 0) throw LoraShellException.InvalidData("EmptyDataFile", $"Data file '{file}' has no records.", file);
    }
}
