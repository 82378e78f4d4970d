using static TorchSharp.torch;

namespace LoraShell.Core.IO;

/// <summary>
/// Writes safetensors files atomically (temporary file, then rename). Tensors are written one at a
/// time in the order given; the header carries each tensor's dtype, shape and byte span, padded with
/// spaces to an 8-byte boundary as the format recommends.
/// </summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in list)
            if (!names.Add(name)) throw LoraShellException.InvalidArgument("DuplicateTensorName", $"Tensor name '{name}' appears twice; safetensors names must be unique.");

        long offset = 0;
        var entries = new List<SafetensorsHeaderEntry>(list.Count);
        foreach (var (name, tensor) in list)
        {
            long bytes = tensor.numel() * SafetensorsDType.SizeOf(tensor.dtype);
            entries.Add(new SafetensorsHeaderEntry(name, SafetensorsDType.NameOf(tensor.dtype), tensor.shape, offset, offset + bytes));
            offset += bytes;
        }
        byte[] header = SafetensorsHeader.Build(entries, metadata);
        AtomicFile.Write(path, stream =>
        {
            SafetensorsHeader.WriteTo(stream, header);
            foreach (var (_, tensor) in list)
            {
                using var scope = NewDisposeScope();
                var cpu = tensor.detach().cpu().contiguous();
                if (cpu.numel() > 0) TensorBytes.Write(cpu, stream);
            }
        });
    }
}
