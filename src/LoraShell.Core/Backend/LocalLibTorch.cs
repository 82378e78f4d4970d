using System.IO.Compression;
using System.Text.RegularExpressions;

namespace LoraShell.Core.Backend;

/// <summary>A libtorch the user already has: a libtorch folder or zip from pytorch.org, or a PyTorch installation's torch/lib.</summary>
public sealed record LocalLibTorchInfo(string LibFolder, string Version, BackendKind Kind);

/// <summary>
/// Finds the library folder and the version of a local libtorch, and refuses any version but 2.10
/// (TorchSharp 0.107 is built against it and checks nothing: another one fails later, obscurely). A
/// folder is used in place, so a PyTorch installation's CUDA libraries resolve where they are; a zip
/// is unpacked into the cache.
/// </summary>
public static class LocalLibTorch
{
    /// <summary>The version and library folder of <paramref name="path"/> (a folder), or a named error saying what was looked for.</summary>
    public static LocalLibTorchInfo Inspect(string path, LibTorchFlavor flavor)
    {
        string full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
            throw LoraShellException.NotFound("LibTorchPathNotFound", $"'{full}' does not exist; expected a libtorch folder or zip, or a PyTorch installation's torch/lib folder.", full);
        string? lib = new[] { full, Path.Combine(full, "lib"), Path.Combine(full, "libtorch", "lib"), Path.Combine(full, "torch", "lib") }
            .FirstOrDefault(d => File.Exists(Path.Combine(d, flavor.MainLibrary)));
        if (lib is null)
            throw LoraShellException.NotFound("LibTorchNotInPath", $"'{full}' holds no {flavor.MainLibrary} (looked in it, lib/, libtorch/lib/ and torch/lib/); expected a libtorch folder or zip, or a PyTorch installation's torch/lib.", full);
        string version = VersionOf(lib) ?? throw LoraShellException.InvalidData("LibTorchVersionUnknown",
            $"The libtorch in '{lib}' does not say its version (no build-version file beside lib/, no version.py beside a PyTorch torch/lib); LoraShell needs {LibTorchFlavor.Version} and cannot check this one.", lib);
        if (!version.StartsWith(LibTorchFlavor.Version, StringComparison.Ordinal) || (version.Length > LibTorchFlavor.Version.Length && char.IsDigit(version[LibTorchFlavor.Version.Length])))
            throw LoraShellException.InvalidData("LibTorchVersionMismatch",
                $"The libtorch in '{lib}' is version {version}; TorchSharp 0.107 (LoraShell's) is built against libtorch {LibTorchFlavor.Version} and would fail with another. Use PyTorch or libtorch {LibTorchFlavor.Version}, or Install-LoraBackend without -Path.", version);
        var kind = version.Contains("+cu", StringComparison.Ordinal) || File.Exists(Path.Combine(lib, flavor.CudaLibrary ?? "libtorch_cuda.so")) ? BackendKind.Cuda : BackendKind.Cpu;
        return new LocalLibTorchInfo(lib, version, kind);
    }

    /// <summary>2.10.0+cpu from libtorch's build-version, or 2.10.0+cu128 from a PyTorch installation's version.py.</summary>
    public static string? VersionOf(string libFolder)
    {
        string parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(libFolder))!;
        string buildVersion = Path.Combine(parent, "build-version");
        if (File.Exists(buildVersion)) return File.ReadAllText(buildVersion).Trim();
        string versionPy = Path.Combine(parent, "version.py");
        if (File.Exists(versionPy))
        {
            var m = Regex.Match(File.ReadAllText(versionPy), @"^__version__\s*=\s*['""]([^'""]+)['""]", RegexOptions.Multiline);
            if (m.Success) return m.Groups[1].Value;
        }
        return null;
    }

    /// <summary>Unpacks a libtorch zip (pytorch.org's libtorch-…-2.10.0….zip) into a cache folder and returns its lib folder's info.</summary>
    public static LocalLibTorchInfo UnpackZip(string zipPath, LibTorchFlavor flavor)
    {
        string full = Path.GetFullPath(zipPath);
        string target = Path.Combine(LibTorchCache.Root(), "local-" + Path.GetFileNameWithoutExtension(full));
        string work = $"{target}.unpack-{Guid.NewGuid():N}";
        try
        {
            try { ZipFile.ExtractToDirectory(full, work); }
            catch (InvalidDataException e) { throw LoraShellException.InvalidData("LibTorchZipInvalid", $"'{full}' is not a readable zip: {e.Message}", full); }
            var info = Inspect(work, flavor); // version checked before anything is kept
            if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
            Directory.Move(work, target);
            return Inspect(target, flavor);
        }
        finally
        {
            if (Directory.Exists(work)) try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }
}
