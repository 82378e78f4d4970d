namespace LoraShell.Core.IO;

/// <summary>
/// What replacing an existing output folder (with -Force) does to what it holds, as PEFT's and
/// transformers' save_pretrained do it: entries the new content also has are replaced; weight files it
/// does not have (a stale shard, an old adapter_model.bin, a .gguf) are removed, so the folder never
/// holds two sets of weights a loader could pick between; everything else — notes, logs, a README,
/// subfolders — is kept. -WhatIf shows <see cref="Describe"/> before anything happens.
/// </summary>
public sealed class FolderReplacement
{
    static readonly string[] WeightExtensions = { ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack" };

    FolderReplacement(string folder, IReadOnlyList<string> replaced, IReadOnlyList<string> removed, IReadOnlyList<string> kept)
    {
        Folder = folder;
        Replaced = replaced;
        Removed = removed;
        Kept = kept;
    }

    public string Folder { get; }
    /// <summary>Entries the new content has too (known only once it is written; empty in a preview).</summary>
    public IReadOnlyList<string> Replaced { get; }
    /// <summary>Weight files the new content does not have.</summary>
    public IReadOnlyList<string> Removed { get; }
    /// <summary>Entries left as they are (in a preview, the ones the new content may still replace by name).</summary>
    public IReadOnlyList<string> Kept { get; }

    /// <summary>A weight file by its name: a loader would read it as (part of) the model or adapter.</summary>
    public static bool IsWeightFile(string name)
        => WeightExtensions.Any(e => name.EndsWith(e, StringComparison.OrdinalIgnoreCase))
           || name.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase)
           || name.EndsWith(".bin.index.json", StringComparison.OrdinalIgnoreCase);

    /// <param name="written">names of the new content's entries; null for a preview before writing</param>
    public static FolderReplacement Plan(string folder, IReadOnlySet<string>? written = null)
    {
        var replaced = new List<string>();
        var removed = new List<string>();
        var kept = new List<string>();
        foreach (var entry in Directory.EnumerateFileSystemEntries(folder).OrderBy(e => e, StringComparer.Ordinal))
        {
            string name = Path.GetFileName(entry);
            if (written?.Contains(name) == true) replaced.Add(name);
            else if (File.Exists(entry) && IsWeightFile(name)) removed.Add(name);
            else kept.Add(name);
        }
        return new FolderReplacement(folder, replaced, removed, kept);
    }

    /// <summary>One line for -WhatIf and -Verbose: what the replace removes and what it keeps.</summary>
    public string Describe(IEnumerable<string>? writes = null)
    {
        string List(IReadOnlyCollection<string> names) => names.Count == 0 ? "none" : string.Join(", ", names.Take(12)) + (names.Count > 12 ? $" and {names.Count - 12} more" : "");
        var writing = writes?.ToList();
        bool Written(string name) => writing?.Contains(name) == true;
        string replacing = writing is null ? "replaces the entries it writes" : $"writes {List(writing)}";
        return $"'{Folder}' exists: -Force {replacing}, removes the other weight files ({List(Removed.Where(r => !Written(r)).ToList())}) and keeps everything else ({List(Kept.Where(k => !Written(k)).ToList())}).";
    }

    /// <summary>
    /// Refuses before anything moves when an entry could not be moved out or deleted: the folder, and
    /// every folder inside a replaced one, must let entries be removed. Checked by creating and deleting a
    /// probe, which is what the file system asks for (write access to the folder that lists the entry).
    /// </summary>
    public void RequireWritable()
    {
        var folders = new List<string> { Folder };
        foreach (var name in Replaced.Concat(Removed))
        {
            string entry = Path.Combine(Folder, name);
            if (Directory.Exists(entry)) folders.AddRange(Directory.EnumerateDirectories(entry, "*", SearchOption.AllDirectories).Prepend(entry));
        }
        foreach (var dir in folders)
        {
            string probe = Path.Combine(dir, $".lorashell-probe-{Guid.NewGuid():N}");
            try
            {
                using (File.Create(probe)) { }
                File.Delete(probe);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "OutputPathNotWritable",
                    $"'{Folder}' cannot be replaced: '{dir}' does not let its files be removed ({e.Message}). Nothing was changed; make it writable or choose another path.", Folder, e);
            }
        }
    }
}
