using System.Text.Json;
using static TorchSharp.torch;

namespace LoraShell.Core.IO;

/// <summary>
/// The tensors of a checkpoint that may span several safetensors files: a single .safetensors file,
/// a folder with <c>model.safetensors</c>, or a folder with a sharded
/// <c>model.safetensors.index.json</c>. Tensors are read one at a time.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    readonly Dictionary<string, SafetensorsFile> _fileOf = new(StringComparer.Ordinal);
    readonly List<SafetensorsFile> _files = new();

    SafetensorsCheckpoint(string source) => Source = source;

    public string Source { get; }
    public IEnumerable<string> Names => _fileOf.Keys;
    public int Count => _fileOf.Count;
    public bool Contains(string name) => _fileOf.ContainsKey(name);

    public SafetensorsEntry Entry(string name) => FileOf(name)[name];

    public Tensor Read(string name) => FileOf(name).ReadTensor(name);

    SafetensorsFile FileOf(string name) => _fileOf.TryGetValue(name, out var f) ? f
        : throw LoraShellException.NotFound("TensorNotFound", $"Checkpoint '{Source}' has no tensor named '{name}'.", name);

    /// <summary>Opens a .safetensors file or an HF folder (single file or sharded).</summary>
    public static SafetensorsCheckpoint Open(string path)
    {
        string full = Path.GetFullPath(path);
        var checkpoint = new SafetensorsCheckpoint(full);
        try
        {
            if (File.Exists(full))
            {
                checkpoint.Add(SafetensorsFile.Open(full));
            }
            else if (Directory.Exists(full))
            {
                string index = Path.Combine(full, IndexFileName);
                string single = Path.Combine(full, SingleFileName);
                if (File.Exists(index)) checkpoint.AddSharded(full, index);
                else if (File.Exists(single)) checkpoint.Add(SafetensorsFile.Open(single));
                else
                {
                    var any = Directory.GetFiles(full, "*.safetensors");
                    if (any.Length == 0)
                        throw LoraShellException.NotFound("NoSafetensors",
                            $"Folder '{full}' has neither {SingleFileName} nor {IndexFileName} nor any *.safetensors file. Found: {ListFolder(full)}.", full);
                    foreach (var f in any.OrderBy(f => f, StringComparer.Ordinal)) checkpoint.Add(SafetensorsFile.Open(f));
                }
            }
            else
            {
                throw LoraShellException.NotFound("CheckpointNotFound", $"'{full}' is neither a .safetensors file nor a folder.", full);
            }
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    internal static string ListFolder(string folder)
    {
        var names = Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).OrderBy(n => n).Take(20).ToList();
        return names.Count == 0 ? "(empty folder)" : string.Join(", ", names);
    }

    void Add(SafetensorsFile file, ISet<string>? only = null)
    {
        _files.Add(file);
        foreach (var name in file.Names)
        {
            if (only != null && !only.Contains(name)) continue;
            if (!_fileOf.TryAdd(name, file))
                throw LoraShellException.InvalidData("DuplicateTensor",
                    $"Tensor '{name}' appears in both '{_fileOf[name].FilePath}' and '{file.FilePath}'.", name);
        }
    }

    void AddSharded(string folder, string indexPath)
    {
        Dictionary<string, List<string>> byShard = new(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw LoraShellException.InvalidData("InvalidShardIndex", $"'{indexPath}' has no 'weight_map' object.", indexPath);
            foreach (var p in map.EnumerateObject())
            {
                string shard = p.Value.GetString() ?? "";
                if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                    throw LoraShellException.InvalidData("InvalidShardIndex", $"'{indexPath}' maps '{p.Name}' to '{shard}', which is not a file name in the folder.", indexPath);
                if (!byShard.TryGetValue(shard, out var names)) byShard[shard] = names = new();
                names.Add(p.Name);
            }
        }
        catch (JsonException e)
        {
            throw LoraShellException.InvalidData("InvalidShardIndex", $"'{indexPath}' is not valid JSON ({e.Message}).", indexPath);
        }

        foreach (var (shard, names) in byShard.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            string shardPath = Path.Combine(folder, shard);
            if (!File.Exists(shardPath))
                throw LoraShellException.NotFound("ShardNotFound", $"'{indexPath}' lists shard '{shard}', which does not exist in '{folder}'.", shardPath);
            var file = SafetensorsFile.Open(shardPath);
            foreach (var name in names)
                if (!file.Contains(name))
                    throw LoraShellException.InvalidData("ShardMissingTensor", $"'{indexPath}' places '{name}' in '{shard}', but that file has no such tensor.", name);
            Add(file, new HashSet<string>(names, StringComparer.Ordinal));
        }
        RefuseConflictingCopies(indexPath);
    }

    /// <summary>
    /// A tensor the index places in one shard but another shard holds as well: the index would pick one copy
    /// without a word, so two different copies are refused (identical ones, as some savers write, are fine).
    /// </summary>
    void RefuseConflictingCopies(string indexPath)
    {
        foreach (var file in _files)
            foreach (var name in file.Names)
            {
                if (!_fileOf.TryGetValue(name, out var chosen) || ReferenceEquals(chosen, file)) continue;
                var (a, b) = (chosen[name], file[name]);
                bool same = a.DType == b.DType && a.Shape.SequenceEqual(b.Shape);
                if (same)
                {
                    using var scope = NewDisposeScope();
                    same = chosen.ReadTensor(name).eq(file.ReadTensor(name)).all().item<bool>();
                }
                if (!same)
                    throw LoraShellException.InvalidData("ConflictingTensorCopies",
                        $"Tensor '{name}' is in both '{Path.GetFileName(chosen.FilePath)}' and '{Path.GetFileName(file.FilePath)}' with different values; '{indexPath}' names the first, but which copy is the model's cannot be told. Remove the stale copy.", name);
            }
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
        _fileOf.Clear();
    }
}
