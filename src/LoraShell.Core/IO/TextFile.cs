using System.Text;

namespace LoraShell.Core.IO;

/// <summary>
/// Reads a file that should hold text, for training or scoring. NUL bytes mean a binary file (an image,
/// a checkpoint, a corrupt download): refused, as its tokens only measure or teach noise. Bytes that
/// are not UTF-8 are decoded as U+FFFD and said so: legal, but usually a file in another encoding
/// (Latin-1, UTF-16), whose every accented letter would otherwise change silently.
/// </summary>
public static class TextFile
{
    /// <param name="role">how messages name the file: "Data file", "Text file"</param>
    /// <param name="purpose">what the text is for, as in "not text to <paramref name="purpose"/>"</param>
    public static string Read(string file, Action<string>? warn, string role = "Data file", string purpose = "train on")
    {
        var bytes = File.ReadAllBytes(file);
        if (bytes.Length == 0) throw LoraShellException.InvalidData("EmptyDataFile", $"{role} '{file}' is empty.", file);
        int nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0)
            throw LoraShellException.InvalidData("DataNotText",
                $"{role} '{file}' holds a NUL byte at offset {nul}; it looks like a binary file (or UTF-16 text), not text to {purpose}. Save text as UTF-8.", file);
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException e)
        {
            warn?.Invoke($"{role} '{file}' is not valid UTF-8 (first bad byte at offset {e.Index}); its invalid bytes were read as U+FFFD. Convert it to UTF-8 if it is in another encoding (Latin-1: iconv -f latin1 -t utf-8).");
            return Encoding.UTF8.GetString(bytes);
        }
    }
}
