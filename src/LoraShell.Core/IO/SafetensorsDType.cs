using static TorchSharp.torch;

namespace LoraShell.Core.IO;

/// <summary>Safetensors dtype names and their torch equivalents.</summary>
public static class SafetensorsDType
{
    static readonly Dictionary<string, (ScalarType Type, int Size)> ByName = new(StringComparer.Ordinal)
    {
        ["F64"] = (ScalarType.Float64, 8),
        ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8),
        ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2),
        ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    public static IReadOnlyCollection<string> Names => ByName.Keys;

    public static bool TryParse(string name, out ScalarType type, out int elementSize)
    {
        if (ByName.TryGetValue(name, out var entry)) { type = entry.Type; elementSize = entry.Size; return true; }
        type = default; elementSize = 0; return false;
    }

    public static string NameOf(ScalarType type)
    {
        foreach (var (name, entry) in ByName)
            if (entry.Type == type) return name;
        throw LoraShellException.InvalidArgument("UnsupportedDType", $"Tensor dtype {type} cannot be stored in safetensors; supported: {string.Join(", ", ByName.Keys)}.");
    }

    public static int SizeOf(ScalarType type)
    {
        foreach (var entry in ByName.Values)
            if (entry.Type == type) return entry.Size;
        throw LoraShellException.InvalidArgument("UnsupportedDType", $"Tensor dtype {type} has no safetensors equivalent.");
    }
}
