using System.Runtime.InteropServices;
using System.Text.Json;

namespace LoraShell.Core.Backend;

/// <summary>Where this process's libtorch comes from.</summary>
public enum BackendSource
{
    /// <summary>Beside TorchSharp.dll (a build of the repository, or a module built with its natives).</summary>
    Bundled,
    /// <summary>The per-user cache Install-LoraBackend fills from NuGet.</summary>
    Cache,
    /// <summary>A libtorch or PyTorch installation the user named (Install-LoraBackend -Path), used in place.</summary>
    Path,
}

/// <summary>The libtorch this process loaded (or would load): which build, from where.</summary>
public sealed record BackendState(LibTorchFlavor Flavor, BackendSource Source, string Folder, string Version, bool FetchedNow);

/// <summary>The user's choice, kept beside the cache: which build to load, and a local libtorch to load instead of the cache.</summary>
public sealed record BackendSelection(BackendKind Kind, string? Path);

/// <summary>
/// Loads libtorch before TorchSharp initialises. TorchSharp loads its LibTorchSharp shim by name and
/// never sets a DLL import resolver, and the shim finds libtorch by its soname: a libtorch loaded first,
/// from the cache or a PyTorch installation, is the one it binds to. One libtorch per process — a second
/// copy aborts — so this runs once and then only reports.
/// </summary>
public static class LibTorchLoader
{
    public const string SelectionFile = "selected-backend.json";
    static readonly object Gate = new();
    static BackendState? _loaded;

    /// <summary>What was loaded in this process; null before the first model work.</summary>
    public static BackendState? Loaded { get { lock (Gate) return _loaded; } }

    /// <summary>The folder of LoraShell.Core.dll, where TorchSharp.dll and its shim sit.</summary>
    public static string AssemblyFolder => Path.GetDirectoryName(typeof(LibTorchLoader).Assembly.Location)!;

    public static BackendSelection Selection()
    {
        string path = Path.Combine(LibTorchCache.Root(), SelectionFile);
        if (!File.Exists(path)) return new BackendSelection(BackendKind.Cpu, null);
        try { return JsonSerializer.Deserialize<BackendSelection>(File.ReadAllText(path)) ?? new BackendSelection(BackendKind.Cpu, null); }
        catch (JsonException) { return new BackendSelection(BackendKind.Cpu, null); }
    }

    public static void Select(BackendSelection selection)
    {
        Directory.CreateDirectory(LibTorchCache.Root());
        IO.AtomicFile.WriteAllText(Path.Combine(LibTorchCache.Root(), SelectionFile), JsonSerializer.Serialize(selection));
    }

    /// <summary>What would be loaded now, without loading or fetching anything (null folder: not installed).</summary>
    public static (LibTorchFlavor Flavor, BackendSource Source, string? Folder, string? Problem) Plan()
    {
        var selection = Selection();
        var flavor = LibTorchFlavor.ForThisMachine(selection.Kind);
        if (File.Exists(Path.Combine(AssemblyFolder, flavor.MainLibrary))) return (flavor with { Kind = BackendKind.Cpu }, BackendSource.Bundled, AssemblyFolder, null);
        if (selection.Path is string local)
            return File.Exists(Path.Combine(local, flavor.MainLibrary)) ? (flavor, BackendSource.Path, local, null)
                : (flavor, BackendSource.Path, null, $"the libtorch chosen with Install-LoraBackend -Path, '{local}', no longer holds {flavor.MainLibrary}");
        string folder = LibTorchCache.FolderFor(flavor);
        var manifest = LibTorchCache.ReadManifest(folder);
        if (manifest is null) return (flavor, BackendSource.Cache, null, null);
        return (flavor, BackendSource.Cache, folder, LibTorchCache.Damage(folder, manifest));
    }

    /// <summary>
    /// Makes sure libtorch is loaded: the bundled one, the chosen local one, or the cached one — fetched
    /// into the cache first when it is not there (<paramref name="fetching"/> says what and how big).
    /// </summary>
    public static BackendState EnsureLoaded(Func<NuGetFeed> feed, Action<PackageDownload>? progress, Action<string>? fetching, CancellationToken cancel)
    {
        lock (Gate)
        {
            if (_loaded is not null) return _loaded;
            var (flavor, source, folder, problem) = Plan();
            if (source == BackendSource.Bundled) return _loaded = new BackendState(flavor, source, folder!, LibTorchFlavor.Version, false);
            if (problem is not null)
                throw new LoraShellException(LoraErrorKind.InvalidData, "BackendDamaged",
                    $"{flavor.Description} in '{folder ?? LibTorchCache.FolderFor(flavor)}' cannot be loaded: {problem}. Run Install-LoraBackend -Force to fetch it again{(source == BackendSource.Path ? ", or Install-LoraBackend -Path with a libtorch that exists" : "")}.", folder);
            bool fetched = false;
            if (folder is null)
            {
                fetching?.Invoke($"LoraShell needs {flavor.Description} and it is not installed for this user: fetching NuGet package {flavor.PackageId} {LibTorchFlavor.Version} into {LibTorchCache.FolderFor(flavor)} (once; Install-LoraBackend does this ahead of time).");
                folder = LibTorchCache.Install(flavor, feed(), progress, null, cancel);
                fetched = true;
            }
            Load(flavor, folder);
            string version = source == BackendSource.Path ? LocalLibTorch.VersionOf(folder) ?? LibTorchFlavor.Version : LibTorchFlavor.Version;
            return _loaded = new BackendState(flavor, source, folder, version, fetched);
        }
    }

    static void Load(LibTorchFlavor flavor, string folder)
    {
        try
        {
            NativeLibrary.Load(Path.Combine(folder, flavor.MainLibrary));
            if (flavor.CudaLibrary is string cudaLibrary && File.Exists(Path.Combine(folder, cudaLibrary)))
                NativeLibrary.Load(Path.Combine(folder, cudaLibrary));
        }
        catch (DllNotFoundException e)
        {
            throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "BackendLoadFailed",
                $"{flavor.Description} in '{folder}' could not be loaded: {e.Message.Split('\n')[0]} Run Install-LoraBackend -Force to fetch it again.", folder, e);
        }
    }
}
