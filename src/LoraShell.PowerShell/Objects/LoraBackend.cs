using LoraShell.Core.Backend;

namespace LoraShell;

/// <summary>A libtorch build: what it is, where it is, and whether this session runs on it (type name LoraShell.LoraBackend).</summary>
public sealed class LoraBackend
{
    internal LoraBackend(LibTorchFlavor flavor, BackendSource source, string? folder, string? problem, bool loaded, string? version = null)
    {
        Backend = flavor.Kind;
        Version = version ?? LibTorchFlavor.Version;
        Platform = flavor.Rid;
        Source = source;
        Folder = folder;
        Status = problem is not null ? $"Damaged: {problem}" : folder is null ? "NotInstalled" : "Installed";
        Loaded = loaded;
        PackageId = source == BackendSource.Cache ? flavor.PackageId : null;
        SizeMiB = folder is not null && Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder).Sum(f => new FileInfo(f).Length) / 1048576.0 : 0;
    }

    public BackendKind Backend { get; }
    public string Version { get; }
    public string Platform { get; }
    /// <summary>Bundled (beside TorchSharp.dll), Cache (fetched from NuGet for this user) or Path (a local libtorch used in place).</summary>
    public BackendSource Source { get; }
    public string? Folder { get; }
    /// <summary>Installed, NotInstalled, or Damaged with what is wrong.</summary>
    public string Status { get; }
    /// <summary>Whether this session has loaded it (one libtorch per process: another takes a new session).</summary>
    public bool Loaded { get; }
    /// <summary>The NuGet package it is restored from (cache only).</summary>
    public string? PackageId { get; }
    public double SizeMiB { get; }
}
