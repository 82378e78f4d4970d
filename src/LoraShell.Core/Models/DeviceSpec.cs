using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>Parses user-facing device names (checking that the device exists) and maps dtypes to torch's.</summary>
public static class DeviceSpec
{
    public static Device ParseDevice(string? name)
    {
        string text = (name ?? "cpu").Trim().ToLowerInvariant();
        if (text == "cpu") return CPU;
        if (text == "cuda" || text.StartsWith("cuda:"))
        {
            int index = 0;
            if (text.Length > 4 && !int.TryParse(text[5..], out index))
                throw LoraShellException.InvalidArgument("InvalidDevice", $"Device '{name}' is not valid; expected cpu, cuda or cuda:N.", name);
            if (!cuda.is_available())
                throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "CudaNotAvailable",
                    $"Device '{name}' was requested but CUDA is not available in this process: {CudaAbsence()}", name);
            int count = cuda.device_count();
            if (index < 0 || index >= count)
                throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "CudaDeviceNotFound",
                    $"Device '{name}' does not exist; {count} CUDA device(s) are present (cuda:0..cuda:{count - 1}).", name);
            return new Device(DeviceType.CUDA, index);
        }
        throw LoraShellException.InvalidArgument("InvalidDevice", $"Device '{name}' is not valid; expected cpu, cuda or cuda:N.", name);
    }

    /// <summary>Why CUDA is missing, and the command that installs it.</summary>
    static string CudaAbsence() => Backend.LibTorchLoader.Loaded switch
    {
        { Source: Backend.BackendSource.Bundled } or null =>
            "the libtorch beside TorchSharp.dll (a build of this repository) has no CUDA, or finds no CUDA device. Build with -p:LoraShellTorchBackend=cuda (README \"CUDA\"), or install the module as a package and run Install-LoraBackend -Backend Cuda.",
        { Flavor.Kind: Backend.BackendKind.Cuda } b => $"the CUDA build of libtorch is loaded ({b.Folder}) but finds no CUDA device or driver.",
        var b => $"the libtorch loaded is the CPU build ({b.Source}: {b.Folder}). Install-LoraBackend -Backend Cuda installs the CUDA build (or -Path a PyTorch 2.10 CUDA installation's torch/lib); it is used from the next session on.",
    };

    /// <summary>The devices this process can use, for completion: cpu, then cuda:0..N-1.</summary>
    public static IEnumerable<string> AvailableDevices()
    {
        yield return "cpu";
        if (cuda.is_available())
            for (int i = 0; i < cuda.device_count(); i++) yield return $"cuda:{i}";
    }

    public static ScalarType ToScalarType(this ModelDType dtype) => dtype switch
    {
        ModelDType.BFloat16 => ScalarType.BFloat16,
        ModelDType.Float16 => ScalarType.Float16,
        _ => ScalarType.Float32,
    };
}

/// <summary>The dtypes a model's weights and compute can use.</summary>
public enum ModelDType
{
    Float32,
    BFloat16,
    Float16,
}
