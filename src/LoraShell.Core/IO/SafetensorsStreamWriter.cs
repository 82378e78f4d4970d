using static TorchSharp.torch;

namespace LoraShell.Core.IO;

/// <summary>
/// Writes a safetensors file one tensor at a time, for outputs too large to hold in memory: tensor
/// bytes are appended to a temporary data file as they are added; <see cref="Finish"/> writes the
/// header and the data into the final file. Nothing appears at the final path until Finish.
/// </summary>
public sealed class SafetensorsStreamWriter : IDisposable
{
    readonly string _dataPath;
    readonly FileStream _data;
    readonly List<SafetensorsHeaderEntry> _entries = new();
    readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public SafetensorsStreamWriter(string scratchFolder)
    {
        Directory.CreateDirectory(scratchFolder);
        _dataPath = Path.Combine(scratchFolder, $".tensors-{Guid.NewGuid():N}.tmp");
        _data = new FileStream(_dataPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
    }

    public int Count => _entries.Count;
    public long Bytes => _data.Length;

    public void Add(string name, Tensor tensor)
    {
        if (!_names.Add(name)) throw LoraShellException.InvalidArgument("DuplicateTensorName", $"Tensor name '{name}' was added twice.");
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        long begin = _data.Length;
        if (cpu.numel() > 0) TensorBytes.Write(cpu, _data);
        _entries.Add(new SafetensorsHeaderEntry(name, SafetensorsDType.NameOf(cpu.dtype), cpu.shape, begin, _data.Length));
    }

    public void Finish(string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = SafetensorsHeader.Build(_entries, metadata);
        _data.Flush();
        AtomicFile.Write(path, stream =>
        {
            SafetensorsHeader.WriteTo(stream, header);
            _data.Seek(0, SeekOrigin.Begin);
            _data.CopyTo(stream, 1 << 20);
        });
    }

    public void Dispose()
    {
        _data.Dispose();
        if (File.Exists(_dataPath)) File.Delete(_dataPath);
    }
}
