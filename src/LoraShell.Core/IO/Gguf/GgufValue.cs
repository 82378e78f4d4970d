namespace LoraShell.Core.IO.Gguf;

/// <summary>The value types of GGUF metadata, with the numbers the file stores.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value with the type it is (or will be) stored as. The type matters to readers:
/// llama.cpp reads <c>adapter.lora.alpha</c> only as FLOAT32 and aborts on an integer, so a value is
/// never written with a type guessed from the CLR value.
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public static GgufValue String(string s) => new(GgufValueType.String, s);
    public static GgufValue UInt32(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Int32(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Float32(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue Strings(IReadOnlyList<string> v) => new(GgufValueType.Array, v.ToArray(), GgufValueType.String);
    public static GgufValue Float32s(IReadOnlyList<float> v) => new(GgufValueType.Array, v.ToArray(), GgufValueType.Float32);
    public static GgufValue Int32s(IReadOnlyList<int> v) => new(GgufValueType.Array, v.ToArray(), GgufValueType.Int32);

    /// <summary>An integer of any stored width, when it is one.</summary>
    public long? AsInteger => Value switch
    {
        byte b => b, sbyte sb => sb, ushort us => us, short s => s, uint u => u, int i => i, long l => l,
        ulong ul when ul <= long.MaxValue => (long)ul,
        bool flag => flag ? 1 : 0,
        _ => null,
    };

    /// <summary>A number of any stored type, when it is one.</summary>
    public double? AsNumber => Value switch { float f => f, double d => d, _ => AsInteger };

    public override string ToString() => Value switch
    {
        string s => s.Length > 80 ? s[..77] + "..." : s,
        System.Array a => $"[{ElementType} × {a.Length}]",
        _ => Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}
