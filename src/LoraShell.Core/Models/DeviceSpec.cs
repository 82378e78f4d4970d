using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>Parses user-facing device and dtype names and checks that the device exists.</summary>
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
                    $"Device '{name}' was requested but CUDA is not available in this process (this build references the CPU libtorch; see README \"CUDA\").", name);
            int count = cuda.device_count();
            if (index < 0 || index >= count)
                throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "CudaDeviceNotFound",
                    $"Device '{name}' does not exist; {count} CUDA device(s) are present (cuda:0..cuda:{count - 1}).", name);
            return new Device(DeviceType.CUDA, index);
        }
        throw LoraShellException.InvalidArgument("InvalidDevice", $"Device '{name}' is not valid; expected cpu, cuda or cuda:N.", name);
    }

    /// <summary>The devices this process can use, for completion: cpu, then cuda:0..N-1.</summary>
    public static IEnumerable<string> AvailableDevices()
    {
        yield return "cpu";
        if (cuda.is_available())
            for (int i = 0; i < cuda.device_count(); i++) yield return $"cuda:{i}";
    }

    public static readonly IReadOnlyList<string> DTypeNames = new[] { "float32", "bfloat16", "float16" };

    public static ScalarType ParseDType(string? name) => (name ?? "float32").Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" or "float" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" or "f16" or "half" => ScalarType.Float16,
        _ => throw LoraShellException.InvalidArgument("InvalidDType", $"DType '{name}' is not supported; expected float32, bfloat16 or float16.", name),
    };
}
