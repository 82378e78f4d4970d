using System.Text.Json;

namespace LoraShell.Core.IO;

/// <summary>One tensor's line in a safetensors header, as a writer lays it out.</summary>
public readonly record struct SafetensorsHeaderEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// The header both safetensors writers emit: optional <c>__metadata__</c> (sorted), then each tensor's
/// dtype, shape and byte span in the order given, as UTF-8 JSON padded with spaces to an 8-byte
/// boundary (the format's recommendation, which keeps the data section aligned).
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>The metadata PyTorch-flavoured readers (transformers, PEFT) expect: <c>{"format": "pt"}</c>.</summary>
    public static readonly IReadOnlyDictionary<string, string> PyTorchMetadata = new Dictionary<string, string> { ["format"] = "pt" };

    public static byte[] Build(IEnumerable<SafetensorsHeaderEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(k, v);
                json.WriteEndObject();
            }
            foreach (var e in entries)
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", e.DType);
                json.WriteStartArray("shape");
                foreach (var d in e.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(e.Begin);
                json.WriteNumberValue(e.End);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        var header = new byte[padded];
        buffer.ToArray().CopyTo(header, 0);
        for (int i = (int)buffer.Length; i < padded; i++) header[i] = (byte)' ';
        return header;
    }

    /// <summary>Writes the 8-byte little-endian length and the header.</summary>
    public static void WriteTo(Stream stream, byte[] header)
    {
        stream.Write(BitConverter.GetBytes((ulong)header.Length));
        stream.Write(header);
    }
}
