using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LoraShell.Core.IO.Gguf;

/// <summary>
/// ggml's tensor types, numbered as ggml.h's <c>enum ggml_type</c> and gguf-py's
/// <c>GGMLQuantizationType</c> number them: the number is what a GGUF file stores for a tensor.
/// 4 and 5 (the old Q4_2/Q4_3), 31-33 and 36-38 (repacked layouts) are gone from the format.
/// </summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}

/// <summary>
/// Block sizes, names and the float conversions of ggml's tensor types, bit for bit as ggml's reference
/// C code (ggml-quants.c's <c>dequantize_row_*</c> and <c>quantize_row_*_ref</c>, ggml-impl.h's fp16/bf16
/// conversions) computes them. A quantized type stores a row as whole blocks of
/// <see cref="BlockElements"/> values in <see cref="BlockBytes"/> bytes; every multi-byte field is
/// little-endian, and an fp16 field is an IEEE binary16.
/// </summary>
/// <remarks>
/// Arithmetic is done in float32 in the order ggml's C writes it, one rounding per operation, never
/// fused: <c>d1 * q - m1</c> is a product rounded to float, then a rounded difference, as ggml-base
/// (which ggml builds without FMA or F16C flags) computes it on x86-64.
/// </remarks>
public static class GgmlTypes
{
    const int QK_K = 256;

    /// <summary>Whether <paramref name="t"/> is one of <see cref="GgmlType"/>'s values.</summary>
    public static bool IsKnown(GgmlType t) => TryLayout(t, out _, out _);

    /// <summary>Whether <see cref="Dequantize"/> converts <paramref name="t"/> to float32.</summary>
    public static bool CanRead(GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
        or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.Q8_K
        or GgmlType.IQ4_NL or GgmlType.IQ4_XS or GgmlType.TQ1_0 or GgmlType.TQ2_0 or GgmlType.MXFP4;

    /// <summary>Whether <see cref="Quantize"/> converts float32 to <paramref name="t"/>.</summary>
    public static bool CanWrite(GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0 or GgmlType.Q4_0;

    /// <summary>Values in one block of <paramref name="t"/> (ggml's <c>ggml_blck_size</c>): 1 for plain
    /// types, 32 for Q4_0..Q8_1/IQ4_NL/MXFP4, 256 for the K-quants and most IQ types.</summary>
    /// <exception cref="ArgumentException">An unknown type.</exception>
    public static int BlockElements(GgmlType t) => Layout(t).Elements;

    /// <summary>Bytes of one block of <paramref name="t"/> (ggml's <c>ggml_type_size</c>).</summary>
    /// <exception cref="ArgumentException">An unknown type.</exception>
    public static int BlockBytes(GgmlType t) => Layout(t).Bytes;

    /// <summary>Bytes that <paramref name="elements"/> values of <paramref name="t"/> take (ggml's <c>ggml_row_size</c>).</summary>
    /// <exception cref="ArgumentException">An unknown type, a negative count, or one that is not a whole number of blocks.</exception>
    public static long RowBytes(GgmlType t, long elements)
    {
        var (blockElements, blockBytes) = Layout(t);
        if (elements < 0) throw new ArgumentOutOfRangeException(nameof(elements), elements, "a count of values cannot be negative");
        if (elements % blockElements != 0)
            throw new ArgumentException($"{elements} values are not a whole number of {Name(t)} blocks of {blockElements}", nameof(elements));
        return checked(elements / blockElements * blockBytes);
    }

    /// <summary>The type's name as gguf-py's <c>GGMLQuantizationType</c> spells it ("Q4_K", "F16"; ggml's own
    /// <c>ggml_type_name</c> is the same in lower case but for the K: "q4_K", "f16"); "type 123" for a number that is no type.</summary>
    public static string Name(GgmlType t) => t switch
    {
        GgmlType.F32 => "F32", GgmlType.F16 => "F16", GgmlType.Q4_0 => "Q4_0", GgmlType.Q4_1 => "Q4_1",
        GgmlType.Q5_0 => "Q5_0", GgmlType.Q5_1 => "Q5_1", GgmlType.Q8_0 => "Q8_0", GgmlType.Q8_1 => "Q8_1",
        GgmlType.Q2_K => "Q2_K", GgmlType.Q3_K => "Q3_K", GgmlType.Q4_K => "Q4_K", GgmlType.Q5_K => "Q5_K",
        GgmlType.Q6_K => "Q6_K", GgmlType.Q8_K => "Q8_K", GgmlType.IQ2_XXS => "IQ2_XXS", GgmlType.IQ2_XS => "IQ2_XS",
        GgmlType.IQ3_XXS => "IQ3_XXS", GgmlType.IQ1_S => "IQ1_S", GgmlType.IQ4_NL => "IQ4_NL", GgmlType.IQ3_S => "IQ3_S",
        GgmlType.IQ2_S => "IQ2_S", GgmlType.IQ4_XS => "IQ4_XS", GgmlType.I8 => "I8", GgmlType.I16 => "I16",
        GgmlType.I32 => "I32", GgmlType.I64 => "I64", GgmlType.F64 => "F64", GgmlType.IQ1_M => "IQ1_M",
        GgmlType.BF16 => "BF16", GgmlType.TQ1_0 => "TQ1_0", GgmlType.TQ2_0 => "TQ2_0", GgmlType.MXFP4 => "MXFP4",
        _ => $"type {(uint)t}",
    };

    /// <summary>
    /// Converts <c>dst.Length</c> values (a whole number of blocks) of type <paramref name="t"/>, stored in
    /// <paramref name="src"/> (exactly <c>RowBytes(t, dst.Length)</c> bytes), to float32 as ggml's
    /// <c>dequantize_row_*</c> does. Large inputs are split over the cores.
    /// </summary>
    /// <exception cref="NotSupportedException">A type that <see cref="CanRead"/> refuses.</exception>
    /// <exception cref="ArgumentException">Lengths that do not fit each other.</exception>
    public static void Dequantize(GgmlType t, ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (!CanRead(t)) throw new NotSupportedException($"{Name(t)} values cannot be converted to float32 (readable: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q8_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4)");
        var (blockElements, blockBytes) = Layout(t);
        CheckLengths(t, src.Length, dst.Length, blockElements, blockBytes, "src", "dst");
        DequantizeKernel kernel = t switch
        {
            GgmlType.F32 => DequantizeF32,
            GgmlType.F16 => DequantizeF16,
            GgmlType.BF16 => DequantizeBF16,
            GgmlType.Q4_0 => DequantizeQ4_0,
            GgmlType.Q4_1 => DequantizeQ4_1,
            GgmlType.Q5_0 => DequantizeQ5_0,
            GgmlType.Q5_1 => DequantizeQ5_1,
            GgmlType.Q8_0 => DequantizeQ8_0,
            GgmlType.Q2_K => DequantizeQ2_K,
            GgmlType.Q3_K => DequantizeQ3_K,
            GgmlType.Q4_K => DequantizeQ4_K,
            GgmlType.Q5_K => DequantizeQ5_K,
            GgmlType.Q6_K => DequantizeQ6_K,
            GgmlType.Q8_K => DequantizeQ8_K,
            GgmlType.IQ4_NL => DequantizeIQ4_NL,
            GgmlType.IQ4_XS => DequantizeIQ4_XS,
            GgmlType.TQ1_0 => DequantizeTQ1_0,
            GgmlType.TQ2_0 => DequantizeTQ2_0,
            GgmlType.MXFP4 => DequantizeMXFP4,
            _ => throw new NotSupportedException(Name(t)),
        };
        RunDequantize(kernel, blockElements, blockBytes, src, dst);
    }

    /// <summary>
    /// Converts the float32 values of <paramref name="src"/> (a whole number of blocks) to type
    /// <paramref name="t"/> in <paramref name="dst"/> (exactly <c>RowBytes(t, src.Length)</c> bytes), as ggml
    /// does: F16 and BF16 round to nearest even (a NaN stays a quiet NaN of the same sign), Q8_0 and Q4_0 as
    /// <c>quantize_row_q8_0_ref</c> / <c>quantize_row_q4_0_ref</c>. Large inputs are split over the cores.
    /// </summary>
    /// <exception cref="NotSupportedException">A type that <see cref="CanWrite"/> refuses.</exception>
    /// <exception cref="ArgumentException">Lengths that do not fit each other.</exception>
    public static void Quantize(GgmlType t, ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (!CanWrite(t)) throw new NotSupportedException($"float32 values cannot be converted to {Name(t)} (writable: F32, F16, BF16, Q8_0, Q4_0)");
        var (blockElements, blockBytes) = Layout(t);
        CheckLengths(t, dst.Length, src.Length, blockElements, blockBytes, "dst", "src");
        QuantizeKernel kernel = t switch
        {
            GgmlType.F32 => QuantizeF32,
            GgmlType.F16 => QuantizeF16,
            GgmlType.BF16 => QuantizeBF16,
            GgmlType.Q8_0 => QuantizeQ8_0,
            GgmlType.Q4_0 => QuantizeQ4_0,
            _ => throw new NotSupportedException(Name(t)),
        };
        RunQuantize(kernel, blockElements, blockBytes, src, dst);
    }

    // ------------------------------------------------------------------ layout

    static bool TryLayout(GgmlType t, out int elements, out int bytes)
    {
        (elements, bytes) = t switch
        {
            GgmlType.F32 => (1, 4),
            GgmlType.F16 => (1, 2),
            GgmlType.BF16 => (1, 2),
            GgmlType.F64 => (1, 8),
            GgmlType.I8 => (1, 1),
            GgmlType.I16 => (1, 2),
            GgmlType.I32 => (1, 4),
            GgmlType.I64 => (1, 8),
            GgmlType.Q4_0 => (32, 2 + 16),
            GgmlType.Q4_1 => (32, 2 + 2 + 16),
            GgmlType.Q5_0 => (32, 2 + 4 + 16),
            GgmlType.Q5_1 => (32, 2 + 2 + 4 + 16),
            GgmlType.Q8_0 => (32, 2 + 32),
            GgmlType.Q8_1 => (32, 2 + 2 + 32),
            GgmlType.IQ4_NL => (32, 2 + 16),
            GgmlType.MXFP4 => (32, 1 + 16),
            GgmlType.Q2_K => (QK_K, QK_K / 16 + QK_K / 4 + 2 + 2),
            GgmlType.Q3_K => (QK_K, QK_K / 8 + QK_K / 4 + 12 + 2),
            GgmlType.Q4_K => (QK_K, 2 + 2 + 12 + QK_K / 2),
            GgmlType.Q5_K => (QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2),
            GgmlType.Q6_K => (QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2),
            GgmlType.Q8_K => (QK_K, 4 + QK_K + QK_K / 16 * 2),
            GgmlType.IQ2_XXS => (QK_K, 2 + QK_K / 8 * 2),
            GgmlType.IQ2_XS => (QK_K, 2 + QK_K / 8 * 2 + QK_K / 32),
            GgmlType.IQ2_S => (QK_K, 2 + QK_K / 4 + QK_K / 16),
            GgmlType.IQ3_XXS => (QK_K, 2 + 3 * QK_K / 8),
            GgmlType.IQ3_S => (QK_K, 2 + 13 * QK_K / 32 + QK_K / 64),
            GgmlType.IQ1_S => (QK_K, 2 + QK_K / 8 + QK_K / 16),
            GgmlType.IQ1_M => (QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            GgmlType.IQ4_XS => (QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),
            GgmlType.TQ1_0 => (QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2),
            GgmlType.TQ2_0 => (QK_K, QK_K / 4 + 2),
            _ => (0, 0),
        };
        return elements != 0;
    }

    static (int Elements, int Bytes) Layout(GgmlType t) =>
        TryLayout(t, out int e, out int b) ? (e, b) : throw new ArgumentException($"{Name(t)} is not a ggml tensor type", nameof(t));

    static void CheckLengths(GgmlType t, int byteLength, int valueLength, int blockElements, int blockBytes, string bytesName, string valuesName)
    {
        if (valueLength % blockElements != 0)
            throw new ArgumentException($"{valueLength} values are not a whole number of {Name(t)} blocks of {blockElements}", valuesName);
        long expected = (long)(valueLength / blockElements) * blockBytes;
        if (byteLength != expected)
            throw new ArgumentException($"{valueLength} {Name(t)} values take {expected} bytes, not {byteLength}", bytesName);
    }

    // ------------------------------------------------------------------ splitting over cores

    delegate void DequantizeKernel(ReadOnlySpan<byte> src, Span<float> dst);
    delegate void QuantizeKernel(ReadOnlySpan<float> src, Span<byte> dst);

    /// <summary>Values per task: big enough that scheduling is noise, small enough to balance.</summary>
    const int ChunkValues = 1 << 16;

    /// <summary>Runs <paramref name="chunk"/>(first block, block count) over chunks of about <see cref="ChunkValues"/> values, in parallel when there are several.</summary>
    static void ForEachChunk(int blocks, int blockElements, Action<int, int> chunk)
    {
        if ((long)blocks * blockElements < 2 * ChunkValues || Environment.ProcessorCount < 2) { chunk(0, blocks); return; }
        int blocksPerChunk = Math.Max(1, ChunkValues / blockElements);
        int chunks = (blocks + blocksPerChunk - 1) / blocksPerChunk;
        Parallel.For(0, chunks, c =>
        {
            int first = c * blocksPerChunk;
            chunk(first, Math.Min(blocksPerChunk, blocks - first));
        });
    }

    static unsafe void RunDequantize(DequantizeKernel kernel, int blockElements, int blockBytes, ReadOnlySpan<byte> src, Span<float> dst)
    {
        fixed (byte* s = src)
        fixed (float* d = dst)
        {
            nint sp = (nint)s, dp = (nint)d;
            ForEachChunk(dst.Length / blockElements, blockElements, (first, n) =>
                kernel(new ReadOnlySpan<byte>((byte*)sp + (long)first * blockBytes, n * blockBytes),
                       new Span<float>((float*)dp + (long)first * blockElements, n * blockElements)));
        }
    }

    static unsafe void RunQuantize(QuantizeKernel kernel, int blockElements, int blockBytes, ReadOnlySpan<float> src, Span<byte> dst)
    {
        fixed (float* s = src)
        fixed (byte* d = dst)
        {
            nint sp = (nint)s, dp = (nint)d;
            ForEachChunk(src.Length / blockElements, blockElements, (first, n) =>
                kernel(new ReadOnlySpan<float>((float*)sp + (long)first * blockElements, n * blockElements),
                       new Span<byte>((byte*)dp + (long)first * blockBytes, n * blockBytes)));
        }
    }

    // ------------------------------------------------------------------ fp16 / bf16 scalars

    /// <summary>IEEE binary16 to float32; exact (every half is a float). A NaN comes back quiet with its
    /// payload, as ggml's conversion (a float multiply of the rebuilt bits) leaves it on x86.</summary>
    internal static float HalfToSingle(ushort h)
    {
        uint sign = (uint)(h & 0x8000) << 16;
        uint exponent = (uint)(h >> 10) & 0x1F;
        uint mantissa = h & 0x3FFu;
        if (exponent == 0)
        {
            // Zero or subnormal: mantissa · 2^-24, exact in float32.
            float magnitude = mantissa * (1f / 16777216f);
            return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(magnitude) | sign);
        }
        if (exponent == 31)
            return BitConverter.UInt32BitsToSingle(sign | 0x7F800000u | (mantissa << 13) | (mantissa != 0 ? 0x00400000u : 0));
        return BitConverter.UInt32BitsToSingle(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    /// <summary>Float32 to IEEE binary16, rounding to nearest even; overflow gives ±∞, and a NaN gives
    /// the quiet NaN 0x7E00 with the sign kept and the payload dropped, as ggml's <c>ggml_compute_fp32_to_fp16</c>.</summary>
    internal static ushort SingleToHalf(float f)
    {
        uint x = BitConverter.SingleToUInt32Bits(f);
        uint sign = (x >> 16) & 0x8000u;
        uint a = x & 0x7FFFFFFFu;
        if (a > 0x7F800000u) return (ushort)(sign | 0x7E00u);
        if (a >= 0x477FF000u) return (ushort)(sign | 0x7C00u);      // ≥ 65520 = 65504 + half an ulp: rounds to ∞
        uint q, rest, half;
        if (a >= 0x38800000u)
        {
            // Normal half: rebias the exponent (127 → 15) and drop 13 mantissa bits.
            uint rebiased = a - 0x38000000u;
            q = rebiased >> 13; rest = rebiased & 0x1FFFu; half = 0x1000u;
        }
        else
        {
            if (a <= 0x33000000u) return (ushort)sign;              // ≤ 2^-25 (a tie at 2^-25 goes to the even 0)
            // Subnormal half: the value in units of 2^-24, i.e. the 24-bit significand shifted right.
            int shift = 126 - (int)(a >> 23);                      // 14..24
            uint significand = (a & 0x007FFFFFu) | 0x00800000u;
            q = significand >> shift; rest = significand & ((1u << shift) - 1); half = 1u << (shift - 1);
        }
        if (rest > half || (rest == half && (q & 1) != 0)) q++;    // a carry into the exponent is correct
        return (ushort)(sign | q);
    }

    /// <summary>Float32 to bfloat16 as ggml's <c>ggml_compute_fp32_to_bf16</c>: round to nearest even on the
    /// top 16 bits; a NaN is truncated and made quiet (bit 6 set), never rounded into ∞.</summary>
    internal static ushort SingleToBFloat16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7FFFu + ((u >> 16) & 1))) >> 16);
    }

    static float BFloat16ToSingle(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    static float ReadHalf(ReadOnlySpan<byte> s, int at) => HalfToSingle(BinaryPrimitives.ReadUInt16LittleEndian(s.Slice(at, 2)));

    /// <summary>Whether the hot kernels (F16, BF16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K) use 128-bit vectors. They compute
    /// the same roundings as the scalar loops (integer unpacking, then one float multiply and at most one
    /// float subtract per value, never fused); tests switch this off to check the scalar code too.</summary>
    internal static bool UseVectors = Vector128.IsHardwareAccelerated;

    /// <summary>y[0..16) = float(q) · scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreSigned(Vector128<sbyte> q, Vector128<float> scale, Span<float> y)
    {
        var (w0, w1) = Vector128.Widen(q);
        var (a0, a1) = Vector128.Widen(w0);
        var (a2, a3) = Vector128.Widen(w1);
        (Vector128.ConvertToSingle(a0) * scale).CopyTo(y);
        (Vector128.ConvertToSingle(a1) * scale).CopyTo(y.Slice(4));
        (Vector128.ConvertToSingle(a2) * scale).CopyTo(y.Slice(8));
        (Vector128.ConvertToSingle(a3) * scale).CopyTo(y.Slice(12));
    }

    /// <summary>y[0..16) = mul · float(q) - sub, the product rounded before the subtraction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreUnsigned(Vector128<byte> q, Vector128<float> mul, Vector128<float> sub, Span<float> y)
    {
        var (w0, w1) = Vector128.Widen(q);
        var (a0, a1) = Vector128.Widen(w0);
        var (a2, a3) = Vector128.Widen(w1);
        (mul * Vector128.ConvertToSingle(a0.AsInt32()) - sub).CopyTo(y);
        (mul * Vector128.ConvertToSingle(a1.AsInt32()) - sub).CopyTo(y.Slice(4));
        (mul * Vector128.ConvertToSingle(a2.AsInt32()) - sub).CopyTo(y.Slice(8));
        (mul * Vector128.ConvertToSingle(a3.AsInt32()) - sub).CopyTo(y.Slice(12));
    }

    // ------------------------------------------------------------------ plain types
    //
    // Every kernel is [AggressiveOptimization]: each runs one long loop per call, which tiered compilation
    // would otherwise start in unoptimized code and, profile-guided, sometimes leave several times slower.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeF32(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (BitConverter.IsLittleEndian) { MemoryMarshal.Cast<byte, float>(src).CopyTo(dst); return; }
        for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src.Slice(4 * i, 4));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeF16(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int i = 0;
        if (UseVectors && BitConverter.IsLittleEndian)
        {
            var halves = MemoryMarshal.Cast<byte, ushort>(src);
            for (; i + 8 <= dst.Length; i += 8)
            {
                var (low, high) = Vector128.Widen(Vector128.Create(halves.Slice(i, 8)));
                HalvesToSingles(low).CopyTo(dst.Slice(i));
                HalvesToSingles(high).CopyTo(dst.Slice(i + 4));
            }
        }
        for (; i < dst.Length; i++) dst[i] = HalfToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(2 * i, 2)));
    }

    /// <summary><see cref="HalfToSingle"/> on four halves (one in the low 16 bits of each lane): all three
    /// cases are computed and the lane's exponent picks one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> HalvesToSingles(Vector128<uint> h)
    {
        var sign = (h & Vector128.Create(0x8000u)) << 16;
        var exponent = h & Vector128.Create(0x7C00u);
        var mantissa = h & Vector128.Create(0x3FFu);
        var normal = (((h & Vector128.Create(0x7FFFu)) << 13) + Vector128.Create(112u << 23)) | sign;
        var special = sign | Vector128.Create(0x7F800000u) | (mantissa << 13)
            | Vector128.AndNot(Vector128.Create(0x00400000u), Vector128.Equals(mantissa, Vector128<uint>.Zero));
        var small = (Vector128.ConvertToSingle(mantissa.AsInt32()) * Vector128.Create(1f / 16777216f)).AsUInt32() | sign;
        var bits = Vector128.ConditionalSelect(Vector128.Equals(exponent, Vector128<uint>.Zero), small,
            Vector128.ConditionalSelect(Vector128.Equals(exponent, Vector128.Create(0x7C00u)), special, normal));
        return bits.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeBF16(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int i = 0;
        if (UseVectors && BitConverter.IsLittleEndian)
        {
            var halves = MemoryMarshal.Cast<byte, ushort>(src);
            for (; i + 8 <= dst.Length; i += 8)
            {
                var (low, high) = Vector128.Widen(Vector128.Create(halves.Slice(i, 8)));
                (low << 16).AsSingle().CopyTo(dst.Slice(i));
                (high << 16).AsSingle().CopyTo(dst.Slice(i + 4));
            }
        }
        for (; i < dst.Length; i++) dst[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(2 * i, 2)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void QuantizeF32(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (BitConverter.IsLittleEndian) { MemoryMarshal.AsBytes(src).CopyTo(dst); return; }
        for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(dst.Slice(4 * i, 4), src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void QuantizeF16(ReadOnlySpan<float> src, Span<byte> dst)
    {
        for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(2 * i, 2), SingleToHalf(src[i]));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void QuantizeBF16(ReadOnlySpan<float> src, Span<byte> dst)
    {
        for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(2 * i, 2), SingleToBFloat16(src[i]));
    }

    // ------------------------------------------------------------------ 32-value blocks

    // Q4_0 (18 bytes): fp16 d, then 16 bytes whose low nibbles are values 0..15 and high nibbles values
    // 16..31 (not neighbours: one nibble-split then serves the two halves of the block). x = (q - 8)·d.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ4_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 18, o += 32)
        {
            float d = ReadHalf(src, s);
            var qs = src.Slice(s + 2, 16);
            var y = dst.Slice(o, 32);
            if (UseVectors)
            {
                var q = Vector128.Create(qs);
                var eight = Vector128.Create((sbyte)8);
                var scale = Vector128.Create(d);
                StoreSigned((q & Vector128.Create((byte)0x0F)).AsSByte() - eight, scale, y);
                StoreSigned(Vector128.ShiftRightLogical(q, 4).AsSByte() - eight, scale, y.Slice(16));
                continue;
            }
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((qs[j] & 0x0F) - 8) * d;
                y[j + 16] = ((qs[j] >> 4) - 8) * d;
            }
        }
    }

    // Q4_1 (20 bytes): fp16 d, fp16 m (the block's minimum, so no value is wasted on a sign), nibbles as
    // Q4_0. x = q·d + m.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ4_1(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 20, o += 32)
        {
            float d = ReadHalf(src, s), m = ReadHalf(src, s + 2);
            var qs = src.Slice(s + 4, 16);
            var y = dst.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = (qs[j] & 0x0F) * d + m;
                y[j + 16] = (qs[j] >> 4) * d + m;
            }
        }
    }

    // Q5_0 (22 bytes): fp16 d, a little-endian uint32 of fifth bits (bit j for value j), nibbles as Q4_0.
    // Keeping the fifth bits apart keeps the nibbles byte-aligned. x = (q - 16)·d.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ5_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 22, o += 32)
        {
            float d = ReadHalf(src, s);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(src.Slice(s + 2, 4));
            var qs = src.Slice(s + 6, 16);
            var y = dst.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                int high0 = (int)((qh >> j) << 4) & 0x10;
                int high1 = (int)(qh >> (j + 12)) & 0x10;
                y[j] = (((qs[j] & 0x0F) | high0) - 16) * d;
                y[j + 16] = (((qs[j] >> 4) | high1) - 16) * d;
            }
        }
    }

    // Q5_1 (24 bytes): fp16 d, fp16 m, uint32 fifth bits, nibbles. x = q·d + m.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ5_1(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 24, o += 32)
        {
            float d = ReadHalf(src, s), m = ReadHalf(src, s + 2);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(src.Slice(s + 4, 4));
            var qs = src.Slice(s + 8, 16);
            var y = dst.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                int high0 = (int)((qh >> j) << 4) & 0x10;
                int high1 = (int)(qh >> (j + 12)) & 0x10;
                y[j] = ((qs[j] & 0x0F) | high0) * d + m;
                y[j + 16] = ((qs[j] >> 4) | high1) * d + m;
            }
        }
    }

    // Q8_0 (34 bytes): fp16 d, 32 int8. x = q·d.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ8_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 34, o += 32)
        {
            float d = ReadHalf(src, s);
            var qs = MemoryMarshal.Cast<byte, sbyte>(src.Slice(s + 2, 32));
            var y = dst.Slice(o, 32);
            if (UseVectors)
            {
                var scale = Vector128.Create(d);
                StoreSigned(Vector128.Create(qs), scale, y);
                StoreSigned(Vector128.Create(qs.Slice(16)), scale, y.Slice(16));
                continue;
            }
            for (int j = 0; j < y.Length; j++) y[j] = qs[j] * d;
        }
    }

    // IQ4_NL (18 bytes): fp16 d and Q4_0's nibble layout, but a nibble indexes a fixed non-uniform table of
    // 16 levels (denser near zero, where weights are). x = d·table[q].
    static ReadOnlySpan<sbyte> IQ4NLValues => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeIQ4_NL(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var values = IQ4NLValues;
        for (int s = 0, o = 0; o < dst.Length; s += 18, o += 32)
        {
            float d = ReadHalf(src, s);
            var qs = src.Slice(s + 2, 16);
            var y = dst.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = d * values[qs[j] & 0x0F];
                y[j + 16] = d * values[qs[j] >> 4];
            }
        }
    }

    // MXFP4 (17 bytes): one E8M0 byte (a bare power of two, the OCP microscaling shared exponent), then
    // Q4_0's nibble layout of E2M1 codes. ggml keeps the E2M1 levels doubled as integers and halves the
    // scale instead, so x = level2[q]·2^(e-128).
    static ReadOnlySpan<sbyte> Mxfp4DoubledValues => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeMXFP4(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var values = Mxfp4DoubledValues;
        for (int s = 0, o = 0; o < dst.Length; s += 17, o += 32)
        {
            int e = src[s];
            // 2^(e-128): e < 2 is a float32 subnormal.
            float d = BitConverter.UInt32BitsToSingle(e < 2 ? 0x00200000u << e : (uint)(e - 1) << 23);
            var qs = src.Slice(s + 1, 16);
            var y = dst.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = values[qs[j] & 0x0F] * d;
                y[j + 16] = values[qs[j] >> 4] * d;
            }
        }
    }

    // ------------------------------------------------------------------ K-quants (256-value super-blocks)

    // Q2_K (84 bytes): 16 scale bytes (low nibble: scale, high nibble: min, for 16 sub-blocks of 16), 64
    // bytes of 2-bit quants, fp16 d, fp16 dmin. Quants are packed by shift, not by neighbour: byte l of each
    // 32-byte group holds values l, l+32, l+64, l+96 of its 128 in bits 0-1, 2-3, 4-5, 6-7, so one shift
    // unpacks 32 consecutive values. x = d·sc·q - dmin·m.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ2_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 84, o += QK_K)
        {
            var scales = src.Slice(s, 16);
            var qs = src.Slice(s + 16, 64);
            float d = ReadHalf(src, s + 80), min = ReadHalf(src, s + 82);
            var y = dst.Slice(o, QK_K);
            int at = 0, sub = 0;
            for (int half = 0; half < 2; half++)
            {
                var q = qs.Slice(32 * half, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int part = 0; part < 32; part += 16)
                    {
                        int sc = scales[sub++];
                        float dl = d * (sc & 0x0F), ml = min * (sc >> 4);
                        for (int l = 0; l < 16; l++) y[at++] = dl * ((q[part + l] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }

    // Q3_K (110 bytes): 32 bytes hmask (the third bit, one bit-plane per 32-value run: bit k of byte l is
    // value 32k+l), 64 bytes of low 2 bits (packed as Q2_K), 12 bytes holding sixteen 6-bit scales, fp16 d.
    // Scale j: its low 4 bits are the low (j<8) or high (j≥8) nibble of byte j%8, its high 2 bits are bits
    // 2·(j/4) of byte 8 + j%4; stored with a +32 offset. A clear hmask bit means q - 4 (a set one is the
    // unsigned value). x = d·(scale - 32)·q.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ3_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<int> scale = stackalloc int[16];
        for (int s = 0, o = 0; o < dst.Length; s += 110, o += QK_K)
        {
            var hmask = src.Slice(s, 32);
            var qs = src.Slice(s + 32, 64);
            var packed = src.Slice(s + 96, 12);
            float d = ReadHalf(src, s + 108);
            for (int j = 0; j < 16; j++)
            {
                int low = j < 8 ? packed[j] & 0x0F : packed[j - 8] >> 4;
                int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
                scale[j] = (low | (high << 4)) - 32;
            }
            var y = dst.Slice(o, QK_K);
            int at = 0, sub = 0, bit = 1;
            for (int half = 0; half < 2; half++)
            {
                var q = qs.Slice(32 * half, 32);
                for (int shift = 0; shift < 8; shift += 2, bit <<= 1)
                {
                    for (int part = 0; part < 32; part += 16)
                    {
                        float dl = d * scale[sub++];
                        for (int l = 0; l < 16; l++)
                            y[at++] = dl * (((q[part + l] >> shift) & 3) - ((hmask[part + l] & bit) != 0 ? 0 : 4));
                    }
                }
            }
        }
    }

    /// <summary>
    /// Q4_K/Q5_K's 12 scale bytes hold eight 6-bit scales and eight 6-bit mins (ggml's get_scale_min_k4):
    /// sub-blocks 0-3 take the low 6 bits of bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 take a nibble
    /// of bytes 8-11 (low: scale, high: min) plus the spare top 2 bits of bytes 0-3 (scale) and 4-7 (min).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    // Q4_K (144 bytes): fp16 d, fp16 dmin, 12 scale bytes (ScaleMinK4), 128 bytes of nibbles: each 32-byte
    // group holds 64 values, the low nibbles the first 32 (one sub-block), the high nibbles the next 32.
    // x = d·sc·q - dmin·m.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ4_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 144, o += QK_K)
        {
            float d = ReadHalf(src, s), min = ReadHalf(src, s + 2);
            var scales = src.Slice(s + 4, 12);
            var y = dst.Slice(o, QK_K);
            for (int g = 0; g < 4; g++)
            {
                var q = src.Slice(s + 16 + 32 * g, 32);
                ScaleMinK4(2 * g, scales, out int sc1, out int m1);
                ScaleMinK4(2 * g + 1, scales, out int sc2, out int m2);
                float d1 = d * sc1, min1 = min * m1, d2 = d * sc2, min2 = min * m2;
                var y1 = y.Slice(64 * g, 32);
                var y2 = y.Slice(64 * g + 32, 32);
                if (UseVectors)
                {
                    var low = Vector128.Create((byte)0x0F);
                    Vector128<float> mul1 = Vector128.Create(d1), sub1 = Vector128.Create(min1), mul2 = Vector128.Create(d2), sub2 = Vector128.Create(min2);
                    for (int half = 0; half < 32; half += 16)
                    {
                        var v = Vector128.Create(q.Slice(half, 16));
                        StoreUnsigned(v & low, mul1, sub1, y1.Slice(half));
                        StoreUnsigned(Vector128.ShiftRightLogical(v, 4), mul2, sub2, y2.Slice(half));
                    }
                    continue;
                }
                for (int l = 0; l < 32; l++)
                {
                    y1[l] = d1 * (q[l] & 0x0F) - min1;
                    y2[l] = d2 * (q[l] >> 4) - min2;
                }
            }
        }
    }

    // Q5_K (176 bytes): Q4_K's header and nibbles with 32 bytes of fifth bits between scales and nibbles:
    // bit 2g of qh[l] goes with the low nibble of group g's byte l, bit 2g+1 with its high nibble.
    // x = d·sc·q - dmin·m.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ5_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 176, o += QK_K)
        {
            float d = ReadHalf(src, s), min = ReadHalf(src, s + 2);
            var scales = src.Slice(s + 4, 12);
            var qh = src.Slice(s + 16, 32);
            var y = dst.Slice(o, QK_K);
            for (int g = 0; g < 4; g++)
            {
                var ql = src.Slice(s + 48 + 32 * g, 32);
                ScaleMinK4(2 * g, scales, out int sc1, out int m1);
                ScaleMinK4(2 * g + 1, scales, out int sc2, out int m2);
                float d1 = d * sc1, min1 = min * m1, d2 = d * sc2, min2 = min * m2;
                int u1 = 1 << (2 * g), u2 = 2 << (2 * g);
                var y1 = y.Slice(64 * g, 32);
                var y2 = y.Slice(64 * g + 32, 32);
                if (UseVectors)
                {
                    Vector128<byte> low = Vector128.Create((byte)0x0F), one = Vector128.Create((byte)1);
                    Vector128<float> mul1 = Vector128.Create(d1), sub1 = Vector128.Create(min1), mul2 = Vector128.Create(d2), sub2 = Vector128.Create(min2);
                    for (int half = 0; half < 32; half += 16)
                    {
                        var v = Vector128.Create(ql.Slice(half, 16));
                        var h = Vector128.Create(qh.Slice(half, 16));
                        var h1 = Vector128.ShiftLeft(Vector128.ShiftRightLogical(h, 2 * g) & one, 4);
                        var h2 = Vector128.ShiftLeft(Vector128.ShiftRightLogical(h, 2 * g + 1) & one, 4);
                        StoreUnsigned((v & low) | h1, mul1, sub1, y1.Slice(half));
                        StoreUnsigned(Vector128.ShiftRightLogical(v, 4) | h2, mul2, sub2, y2.Slice(half));
                    }
                    continue;
                }
                for (int l = 0; l < 32; l++)
                {
                    y1[l] = d1 * ((ql[l] & 0x0F) + ((qh[l] & u1) != 0 ? 16 : 0)) - min1;
                    y2[l] = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - min2;
                }
            }
        }
    }

    // Q6_K (210 bytes): 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales (one per 16
    // values), fp16 d. Per 128-value half: ql[l] holds values l (low nibble) and l+64 (high), ql[l+32]
    // values l+32 and l+96; qh[l] holds the high bits of l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
    // x = d·scale·(q - 32), multiplied in that order.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ6_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 210, o += QK_K)
        {
            float d = ReadHalf(src, s + 208);
            var allScales = MemoryMarshal.Cast<byte, sbyte>(src.Slice(s + 192, 16));
            for (int half = 0; half < 2; half++)
            {
                var ql = src.Slice(s + 64 * half, 64);
                var qh = src.Slice(s + 128 + 32 * half, 32);
                var sc = allScales.Slice(8 * half, 8);
                var y = dst.Slice(o + 128 * half, 128);
                if (UseVectors)
                {
                    Vector128<byte> low = Vector128.Create((byte)0x0F), three = Vector128.Create((byte)3);
                    var offset = Vector128.Create((sbyte)32);
                    for (int l = 0; l < 32; l += 16)
                    {
                        int i = l / 16;
                        var a = Vector128.Create(ql.Slice(l, 16));
                        var b = Vector128.Create(ql.Slice(l + 32, 16));
                        var h = Vector128.Create(qh.Slice(l, 16));
                        // The scale is rounded into d first, as ggml's d * sc * q.
                        StoreSigned(((a & low) | Vector128.ShiftLeft(h & three, 4)).AsSByte() - offset, Vector128.Create(d * sc[i]), y.Slice(l));
                        StoreSigned(((b & low) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(h, 2) & three, 4)).AsSByte() - offset, Vector128.Create(d * sc[i + 2]), y.Slice(l + 32));
                        StoreSigned((Vector128.ShiftRightLogical(a, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(h, 4) & three, 4)).AsSByte() - offset, Vector128.Create(d * sc[i + 4]), y.Slice(l + 64));
                        StoreSigned((Vector128.ShiftRightLogical(b, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(h, 6), 4)).AsSByte() - offset, Vector128.Create(d * sc[i + 6]), y.Slice(l + 96));
                    }
                    continue;
                }
                for (int l = 0; l < 32; l++)
                {
                    int i = l / 16;
                    int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc[i] * q1;
                    y[l + 32] = d * sc[i + 2] * q2;
                    y[l + 64] = d * sc[i + 4] * q3;
                    y[l + 96] = d * sc[i + 6] * q4;
                }
            }
        }
    }

    // Q8_K (292 bytes): a float32 d (not fp16: this is the intermediate format of the K-quant dot
    // products), 256 int8, and 16 int16 sums of 16 quants each, which dequantizing ignores. x = d·q.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeQ8_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 292, o += QK_K)
        {
            float d = BinaryPrimitives.ReadSingleLittleEndian(src.Slice(s, 4));
            var qs = MemoryMarshal.Cast<byte, sbyte>(src.Slice(s + 4, QK_K));
            var y = dst.Slice(o, QK_K);
            for (int j = 0; j < y.Length; j++) y[j] = d * qs[j];
        }
    }

    // IQ4_XS (136 bytes): fp16 d, a uint16 of the eight scales' high 2 bits, 4 bytes of their low nibbles
    // (sub-block ib: nibble ib%2 of byte ib/2), then per 32-value sub-block 16 bytes in IQ4_NL's layout.
    // x = d·(scale - 32)·table[q].
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeIQ4_XS(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var values = IQ4NLValues;
        for (int s = 0, o = 0; o < dst.Length; s += 136, o += QK_K)
        {
            float d = ReadHalf(src, s);
            int scalesHigh = BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(s + 2, 2));
            var scalesLow = src.Slice(s + 4, 4);
            for (int ib = 0; ib < 8; ib++)
            {
                int ls = ((scalesLow[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((scalesHigh >> (2 * ib)) & 3) << 4);
                float dl = d * (ls - 32);
                var qs = src.Slice(s + 8 + 16 * ib, 16);
                var y = dst.Slice(o + 32 * ib, 32);
                for (int j = 0; j < 16; j++)
                {
                    y[j] = dl * values[qs[j] & 0x0F];
                    y[j + 16] = dl * values[qs[j] >> 4];
                }
            }
        }
    }

    // TQ1_0 (54 bytes): ternary weights (BitNet b1.58). 48 bytes hold 5 trits each and 4 bytes 4 trits
    // each (3^5 = 243 ≤ 256), as a fixed-point fraction q·256/243 so that trit n is the integer part of
    // (q·3^n mod 256)·3/256 (no division when unpacking); then fp16 d. Bytes 0-31 give values in runs of
    // 32 (trit n of byte m is value 32n+m), bytes 32-47 runs of 16, the 4 qh bytes runs of 4. x = (t - 1)·d.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeTQ1_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        ReadOnlySpan<byte> pow3 = [1, 3, 9, 27, 81, 243];
        for (int s = 0, o = 0; o < dst.Length; s += 54, o += QK_K)
        {
            var qs = src.Slice(s, 48);
            var qh = src.Slice(s + 48, 4);
            float d = ReadHalf(src, s + 52);
            var y = dst.Slice(o, QK_K);
            int at = 0;
            for (int n = 0; n < 5; n++)
                for (int m = 0; m < 32; m++) y[at++] = (Trit(qs[m], pow3[n]) - 1) * d;
            for (int n = 0; n < 5; n++)
                for (int m = 0; m < 16; m++) y[at++] = (Trit(qs[32 + m], pow3[n]) - 1) * d;
            for (int n = 0; n < 4; n++)
                for (int j = 0; j < 4; j++) y[at++] = (Trit(qh[j], pow3[n]) - 1) * d;
        }
    }

    static int Trit(byte packed, byte power) => ((byte)(packed * power) * 3) >> 8;

    // TQ2_0 (66 bytes): 2 bits per ternary weight, packed by shift as Q2_K's quants (byte m of each
    // 32-byte group: values m, m+32, m+64, m+96 of its 128), then fp16 d. x = (q - 1)·d.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeTQ2_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int s = 0, o = 0; o < dst.Length; s += 66, o += QK_K)
        {
            float d = ReadHalf(src, s + 64);
            var y = dst.Slice(o, QK_K);
            int at = 0;
            for (int j = 0; j < 64; j += 32)
            {
                var qs = src.Slice(s + j, 32);
                for (int shift = 0; shift < 8; shift += 2)
                    for (int m = 0; m < 32; m++) y[at++] = (((qs[m] >> shift) & 3) - 1) * d;
            }
        }
    }

    // ------------------------------------------------------------------ quantizing

    /// <summary>C's float→int8_t conversion as x86-64 compiles it (cvttss2si to int32, keep the low byte):
    /// truncation toward zero in range; NaN and out-of-range values, undefined in C, give 0 there.</summary>
    static int TruncateToInt8(float v)
    {
        int i = v >= -2147483648f && v < 2147483648f ? (int)v : int.MinValue;
        return unchecked((sbyte)i);
    }

    // quantize_row_q8_0_ref: d = max|x|/127 (float32), id = 1/d, q = roundf(x·id) (halves away from
    // zero, not to even), d stored as fp16 (the quants were chosen with the unrounded d).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void QuantizeQ8_0(ReadOnlySpan<float> src, Span<byte> dst)
    {
        for (int s = 0, o = 0; s < src.Length; s += 32, o += 34)
        {
            var x = src.Slice(s, 32);
            float amax = 0f;
            for (int j = 0; j < x.Length; j++)
            {
                float a = MathF.Abs(x[j]);
                amax = amax > a ? amax : a;                 // ggml's MAX(amax, fabsf(v)), NaN handling included
            }
            float d = amax / 127f;
            float id = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(o, 2), SingleToHalf(d));
            var qs = dst.Slice(o + 2, 32);
            for (int j = 0; j < qs.Length; j++)
                qs[j] = (byte)TruncateToInt8(MathF.Round(x[j] * id, MidpointRounding.AwayFromZero));
        }
    }

    // quantize_row_q4_0_ref: the value of largest magnitude (the first, on ties) maps to -8, so
    // d = max/-8 keeps its sign; q = min(15, (int8)(x·id + 8.5)), i.e. x/d rounded half up, plus 8.
    // x·id is rounded to float before 8.5 is added: ggml-base is built without FMA, so nothing fuses them
    // (gguf-py's quants.py emulates a fused multiply-add here, and differs from this in rare ties).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void QuantizeQ4_0(ReadOnlySpan<float> src, Span<byte> dst)
    {
        for (int s = 0, o = 0; s < src.Length; s += 32, o += 18)
        {
            var x = src.Slice(s, 32);
            float amax = 0f, max = 0f;
            for (int j = 0; j < x.Length; j++)
            {
                float a = MathF.Abs(x[j]);
                if (amax < a) { amax = a; max = x[j]; }
            }
            float d = max / -8f;
            float id = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(o, 2), SingleToHalf(d));
            var qs = dst.Slice(o + 2, 16);
            for (int j = 0; j < 16; j++)
            {
                float x0 = x[j] * id;
                float x1 = x[j + 16] * id;
                int q0 = Math.Min(15, TruncateToInt8(x0 + 8.5f));
                int q1 = Math.Min(15, TruncateToInt8(x1 + 8.5f));
                qs[j] = (byte)(q0 | (q1 << 4));
            }
        }
    }
}
