using System.Runtime.InteropServices;

namespace LoraShell.Core.Backend;

/// <summary>Which libtorch build: CPU only, or CUDA.</summary>
public enum BackendKind
{
    Cpu,
    Cuda,
}

/// <summary>
/// One libtorch build for one platform, as TorchSharp's NuGet packages ship it: the head package to
/// restore (its parts come as its dependencies), the per-user cache folder it unpacks into, and the
/// library whose load pulls in the rest. TorchSharp 0.107 binds to libtorch 2.10.0 and checks nothing
/// itself, so that is the one version LoraShell accepts.
/// </summary>
public sealed record LibTorchFlavor(BackendKind Kind, string Rid)
{
    public const string Version = "2.10.0";
    public const string CudaVersion = "12.8";
    public static readonly string[] Rids = { "linux-x64", "win-x64", "osx-arm64" };

    /// <summary>The NuGet package whose dependencies are the rest of the build (CUDA's large files come in fragment packages).</summary>
    public string PackageId => Kind == BackendKind.Cpu ? $"libtorch-cpu-{Rid}" : $"libtorch-cuda-{CudaVersion}-{Rid}";

    /// <summary>The cache folder's name: 2.10.0-cpu-linux-x64, 2.10.0-cuda-12.8-win-x64.</summary>
    public string CacheKey => Kind == BackendKind.Cpu ? $"{Version}-cpu-{Rid}" : $"{Version}-cuda-{CudaVersion}-{Rid}";

    public string Description => Kind == BackendKind.Cpu ? $"libtorch {Version} (CPU, {Rid})" : $"libtorch {Version} (CUDA {CudaVersion}, {Rid})";

    /// <summary>The library that is loaded first: it names the others, which the loader finds beside it.</summary>
    public string MainLibrary => Rid.StartsWith("win", StringComparison.Ordinal) ? "torch.dll"
        : Rid.StartsWith("osx", StringComparison.Ordinal) ? "libtorch.dylib" : "libtorch.so";

    /// <summary>On CUDA builds the CUDA half is its own library; loading it makes the CUDA device available.</summary>
    public string? CudaLibrary => Kind == BackendKind.Cpu ? null
        : Rid.StartsWith("win", StringComparison.Ordinal) ? "torch_cuda.dll" : "libtorch_cuda.so";

    /// <summary>Files the packages carry that LoraShell never loads (Python bindings, test backends).</summary>
    public static bool IsUnused(string fileName) => fileName.Contains("torch_python", StringComparison.Ordinal)
        || fileName.Contains("jitbackend_test", StringComparison.Ordinal) || fileName.Contains("torchbind_test", StringComparison.Ordinal)
        || fileName.Contains("backend_with_compiler", StringComparison.Ordinal) || fileName.Contains("nnapi_backend", StringComparison.Ordinal)
        || fileName.Contains("aoti_custom_ops", StringComparison.Ordinal);

    /// <summary>The platform this process runs on, as TorchSharp's packages name it; null where none is shipped.</summary>
    public static string? CurrentRid()
    {
        string? os = OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : null;
        string? arch = RuntimeInformation.ProcessArchitecture switch { Architecture.X64 => "x64", Architecture.Arm64 => "arm64", _ => null };
        string? rid = os is null || arch is null ? null : $"{os}-{arch}";
        return rid is not null && Rids.Contains(rid) ? rid : null;
    }

    public static LibTorchFlavor ForThisMachine(BackendKind kind)
    {
        string rid = CurrentRid() ?? throw new LoraShellException(LoraErrorKind.InvalidOperation, "PlatformNotSupported",
            $"TorchSharp ships libtorch for {string.Join(", ", Rids)}; this machine is {RuntimeInformation.RuntimeIdentifier}.", RuntimeInformation.RuntimeIdentifier);
        if (kind == BackendKind.Cuda && rid == "osx-arm64")
            throw new LoraShellException(LoraErrorKind.InvalidArgument, "CudaNotOnMac", "There is no CUDA build of libtorch for macOS; use -Backend Cpu.", rid);
        return new LibTorchFlavor(kind, rid);
    }
}
