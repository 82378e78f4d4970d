using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;

namespace LoraShell.Core.Backend;

/// <summary>What a cache folder holds: which build, where it came from, and every file's size (a truncated file is caught before it is loaded).</summary>
public sealed record BackendManifest(string Build, string Source, DateTime InstalledUtc, Dictionary<string, long> Files);

/// <summary>
/// The per-user libtorch cache (~/.cache/LoraShell/libtorch/2.10.0-cpu-linux-x64; %LOCALAPPDATA% on Windows,
/// ~/Library/Caches on macOS): restores a build's NuGet packages into it, joins the fragments large
/// CUDA libraries are shipped in (checked against their .sha files), and checks what is there.
/// Everything is unpacked beside the folder and renamed into place, so a failed or stopped download
/// never leaves a half-filled cache.
/// </summary>
public static class LibTorchCache
{
    public const string ManifestFile = "lorashell-backend.json";

    public static string Root()
    {
        string baseFolder = OperatingSystem.IsWindows() ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
            : OperatingSystem.IsMacOS() ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "Library", "Caches")
            : Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(baseFolder, "LoraShell", "libtorch");
    }

    public static string FolderFor(LibTorchFlavor flavor) => Path.Combine(Root(), flavor.CacheKey);

    public static BackendManifest? ReadManifest(string folder)
    {
        string path = Path.Combine(folder, ManifestFile);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<BackendManifest>(File.ReadAllText(path)); }
        catch (JsonException) { return null; }
    }

    /// <summary>The first thing wrong with a cache folder (a missing or resized file), or null when it is whole.</summary>
    public static string? Damage(string folder, BackendManifest manifest)
    {
        foreach (var (name, size) in manifest.Files)
        {
            var file = new FileInfo(Path.Combine(folder, name));
            if (!file.Exists) return $"{name} is missing";
            if (file.Length != size) return $"{name} is {file.Length:N0} bytes, {size:N0} were installed";
        }
        return null;
    }

    /// <summary>Restores <paramref name="flavor"/>'s packages from <paramref name="feed"/> into its cache folder (replacing one that is there) and returns the folder.</summary>
    public static string Install(LibTorchFlavor flavor, NuGetFeed feed, Action<PackageDownload>? progress, Action<string>? status, CancellationToken cancel)
    {
        string folder = FolderFor(flavor);
        Directory.CreateDirectory(Root());
        string work = $"{folder}.download-{Guid.NewGuid():N}";
        string staging = Path.Combine(work, "files");
        Directory.CreateDirectory(staging);
        try
        {
            var pending = new Queue<(string Id, string Version)>();
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            pending.Enqueue((flavor.PackageId, LibTorchFlavor.Version));
            string firstSource = "";
            while (pending.TryDequeue(out var package))
            {
                if (!seen.Add(package.Id)) continue;
                string nupkg = feed.Fetch(package.Id, package.Version, work, d => { if (firstSource.Length == 0) firstSource = d.Source; progress?.Invoke(d); }, cancel);
                foreach (var dependency in NuGetFeed.LibTorchDependencies(nupkg)) pending.Enqueue(dependency);
                status?.Invoke($"Unpacking {Path.GetFileName(nupkg)}");
                Extract(nupkg, flavor.Rid, staging, cancel);
                File.Delete(nupkg); // the unpacked files are what stays; the package is not needed twice
            }
            Restitch(staging, status, cancel);
            if (!File.Exists(Path.Combine(staging, flavor.MainLibrary)))
                throw LoraShellException.InvalidData("BackendPackageIncomplete",
                    $"The packages of {flavor.Description} ({string.Join(", ", seen)}) hold no {flavor.MainLibrary} for {flavor.Rid}; the feed serves something else under that name.", flavor.PackageId);
            var manifest = new BackendManifest(flavor.CacheKey, firstSource, DateTime.UtcNow,
                Directory.EnumerateFiles(staging).ToDictionary(f => Path.GetFileName(f), f => new FileInfo(f).Length, StringComparer.Ordinal));
            File.WriteAllText(Path.Combine(staging, ManifestFile), JsonSerializer.Serialize(manifest, new JsonSerializerOptions { WriteIndented = true }));
            Replace(staging, folder);
            return folder;
        }
        finally
        {
            try { if (Directory.Exists(work)) Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The native files of one platform from a package: runtimes/RID/native/* and fragments/RID/native/*, flat.</summary>
    static void Extract(string nupkg, string rid, string staging, CancellationToken cancel)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        foreach (var entry in zip.Entries)
        {
            cancel.ThrowIfCancellationRequested();
            string name = entry.FullName.Replace('\\', '/');
            if (!(name.StartsWith($"runtimes/{rid}/native/", StringComparison.Ordinal) || name.StartsWith($"fragments/{rid}/native/", StringComparison.Ordinal))) continue;
            string file = Path.GetFileName(name);
            if (file.Length == 0 || LibTorchFlavor.IsUnused(file)) continue;
            entry.ExtractToFile(Path.Combine(staging, file), overwrite: true);
        }
    }

    /// <summary>
    /// Joins each large library shipped in pieces (a.so from its primary package, a.so.fragment1…N from
    /// the fragment packages, in order) and checks the whole against a.so.sha (SHA-256, hex), as
    /// TorchSharp's restitching does at build time.
    /// </summary>
    public static void Restitch(string staging, Action<string>? status, CancellationToken cancel)
    {
        foreach (var primary in Directory.EnumerateFiles(staging).Where(f => File.Exists(f + ".fragment1")).ToList())
        {
            string name = Path.GetFileName(primary);
            status?.Invoke($"Joining {name} from its fragments");
            var pieces = new List<string> { primary };
            for (int k = 1; File.Exists($"{primary}.fragment{k}"); k++) pieces.Add($"{primary}.fragment{k}");
            string joined = primary + ".joined";
            using (var output = File.Create(joined))
                foreach (var piece in pieces)
                {
                    cancel.ThrowIfCancellationRequested();
                    using var input = File.OpenRead(piece);
                    input.CopyTo(output);
                }
            string shaFile = primary + ".sha";
            if (!File.Exists(shaFile))
                throw LoraShellException.InvalidData("BackendFragmentUnchecked", $"{name} comes in {pieces.Count} pieces but its package has no {name}.sha to check the joined file against.", name);
            string expected = File.ReadAllText(shaFile).Trim().ToLowerInvariant();
            string actual;
            using (var stream = File.OpenRead(joined)) actual = Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
            if (actual != expected)
                throw LoraShellException.InvalidData("BackendFragmentMismatch",
                    $"{name} joined from {pieces.Count} pieces ({string.Join(", ", pieces.Select(p => $"{Path.GetFileName(p)} {new FileInfo(p).Length:N0} bytes"))}) has SHA-256 {actual}, but {name}.sha says {expected}: a fragment package is damaged or from another build. Run Install-LoraBackend -Force.", name);
            foreach (var piece in pieces) File.Delete(piece);
            File.Move(joined, primary);
        }
        foreach (var sha in Directory.EnumerateFiles(staging, "*.sha")) File.Delete(sha);
    }

    /// <summary>Renames the filled folder into place; an existing one is moved aside first and removed after.</summary>
    static void Replace(string filled, string folder)
    {
        string? old = null;
        if (Directory.Exists(folder))
        {
            old = $"{folder}.old-{Guid.NewGuid():N}";
            Directory.Move(folder, old);
        }
        Directory.Move(filled, folder);
        if (old is not null) try { Directory.Delete(old, recursive: true); } catch (IOException) { }
    }
}
