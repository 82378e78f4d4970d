using System.Buffers.Binary;
using LoraShell.Core.IO.Gguf;

namespace LoraShell.Core.Tests;

/// <summary>
/// ggml's tensor types against numbers worked out by hand from ggml's block definitions (ggml-common.h's
/// structs, ggml-quants.c's dequantize_row_* / quantize_row_*_ref): every expected value below is derived
/// in the comment beside it, none was taken from running the code.
/// </summary>
public class GgmlTypesTests
{
    // fp16 bit patterns used below: 1.0 = 0x3C00, 0.5 = 0x3800, 0.25 = 0x3400, 2.0 = 0x4000,
    // -1.0 = 0xBC00, -2.0 = 0xC000 (sign bit, 5 exponent bits biased by 15, 10 mantissa bits).
    const ushort One = 0x3C00, Half = 0x3800, Quarter = 0x3400, Two = 0x4000, MinusOne = 0xBC00, MinusTwo = 0xC000;

    static void PutHalf(byte[] block, int at, ushort bits) => BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(at), bits);

    static float[] Dequantize(GgmlType t, byte[] bytes)
    {
        var values = new float[bytes.Length / GgmlTypes.BlockBytes(t) * GgmlTypes.BlockElements(t)];
        GgmlTypes.Dequantize(t, bytes, values);
        return values;
    }

    static byte[] Quantize(GgmlType t, float[] values)
    {
        var bytes = new byte[GgmlTypes.RowBytes(t, values.Length)];
        GgmlTypes.Quantize(t, values, bytes);
        return bytes;
    }

    static ushort[] QuantizeHalves(GgmlType t, params float[] values)
    {
        var bytes = Quantize(t, values);
        return Enumerable.Range(0, values.Length).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i))).ToArray();
    }

    static float Bits(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    [Fact]
    public void TypeNumbersAreGgufs()
    {
        // ggml.h's enum ggml_type: a GGUF tensor info stores these numbers.
        Assert.Equal(0u, (uint)GgmlType.F32);
        Assert.Equal(1u, (uint)GgmlType.F16);
        Assert.Equal(2u, (uint)GgmlType.Q4_0);
        Assert.Equal(8u, (uint)GgmlType.Q8_0);
        Assert.Equal(12u, (uint)GgmlType.Q4_K);
        Assert.Equal(14u, (uint)GgmlType.Q6_K);
        Assert.Equal(30u, (uint)GgmlType.BF16);
        Assert.Equal(39u, (uint)GgmlType.MXFP4);
        Assert.True(GgmlTypes.IsKnown(GgmlType.Q5_K));
        // 4 and 5 (Q4_2, Q4_3) and 31..33 (Q4_0_4_4...) were removed from the format; 123 never existed.
        Assert.False(GgmlTypes.IsKnown((GgmlType)4));
        Assert.False(GgmlTypes.IsKnown((GgmlType)31));
        Assert.False(GgmlTypes.IsKnown((GgmlType)123));
    }

    [Theory]
    [InlineData(GgmlType.F32, 1, 4)]
    [InlineData(GgmlType.F16, 1, 2)]
    [InlineData(GgmlType.BF16, 1, 2)]
    [InlineData(GgmlType.Q4_0, 32, 18)]    // fp16 d + 32 nibbles
    [InlineData(GgmlType.Q4_1, 32, 20)]    // d, m + 16
    [InlineData(GgmlType.Q5_0, 32, 22)]    // d + 4 bytes of fifth bits + 16
    [InlineData(GgmlType.Q5_1, 32, 24)]    // d, m + 4 + 16
    [InlineData(GgmlType.Q8_0, 32, 34)]    // d + 32 int8
    [InlineData(GgmlType.Q2_K, 256, 84)]   // 16 scales + 64 quants + d, dmin
    [InlineData(GgmlType.Q3_K, 256, 110)]  // 32 hmask + 64 + 12 scales + d
    [InlineData(GgmlType.Q4_K, 256, 144)]  // d, dmin + 12 scales + 128
    [InlineData(GgmlType.Q5_K, 256, 176)]  // d, dmin + 12 + 32 fifth bits + 128
    [InlineData(GgmlType.Q6_K, 256, 210)]  // 128 ql + 64 qh + 16 scales + d
    [InlineData(GgmlType.Q8_K, 256, 292)]  // float32 d + 256 + 16 int16 sums
    [InlineData(GgmlType.IQ4_NL, 32, 18)]
    [InlineData(GgmlType.IQ4_XS, 256, 136)] // d + 2 + 4 + 128
    [InlineData(GgmlType.TQ1_0, 256, 54)]  // 48 + 4 + d
    [InlineData(GgmlType.TQ2_0, 256, 66)]  // 64 + d
    [InlineData(GgmlType.MXFP4, 32, 17)]   // e8m0 byte + 16
    public void BlockSizes(GgmlType t, int elements, int bytes)
    {
        Assert.Equal(elements, GgmlTypes.BlockElements(t));
        Assert.Equal(bytes, GgmlTypes.BlockBytes(t));
        Assert.Equal(3L * bytes, GgmlTypes.RowBytes(t, 3L * elements));
        Assert.Equal(0L, GgmlTypes.RowBytes(t, 0));
    }

    [Fact]
    public void RowBytesRefusesPartialBlocks()
    {
        Assert.Equal(16 * 144L, GgmlTypes.RowBytes(GgmlType.Q4_K, 4096));
        Assert.Equal(128 * 34L, GgmlTypes.RowBytes(GgmlType.Q8_0, 4096));
        Assert.Throws<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.Q4_K, 255));
        Assert.Throws<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.Q4_K, 4096 + 32));
        Assert.Throws<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.Q8_0, 33));
        Assert.ThrowsAny<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.F32, -1));
        Assert.ThrowsAny<ArgumentException>(() => GgmlTypes.RowBytes((GgmlType)123, 32));
        Assert.ThrowsAny<ArgumentException>(() => GgmlTypes.BlockBytes((GgmlType)123));
    }

    [Fact]
    public void NamesAreGgufPys()
    {
        Assert.Equal("Q4_K", GgmlTypes.Name(GgmlType.Q4_K));
        Assert.Equal("F16", GgmlTypes.Name(GgmlType.F16));
        Assert.Equal("BF16", GgmlTypes.Name(GgmlType.BF16));
        Assert.Equal("IQ2_XXS", GgmlTypes.Name(GgmlType.IQ2_XXS));
        Assert.Equal("type 123", GgmlTypes.Name((GgmlType)123));
    }

    [Fact]
    public void ReadableAndWritableTypes()
    {
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
                     GgmlType.Q8_0, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K })
            Assert.True(GgmlTypes.CanRead(t), t.ToString());
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0 })
            Assert.True(GgmlTypes.CanWrite(t), t.ToString());
        Assert.False(GgmlTypes.CanRead(GgmlType.IQ2_XXS));
        Assert.False(GgmlTypes.CanRead(GgmlType.I32));
        Assert.False(GgmlTypes.CanWrite(GgmlType.Q4_K));
        Assert.False(GgmlTypes.CanRead((GgmlType)123));
    }

    [Fact]
    public void Q8_0IsInt8TimesD()
    {
        var bytes = new byte[68];
        // Block 0: d = 0.5, q_j = 8j - 128 (-128..120) -> x_j = 4j - 64.
        PutHalf(bytes, 0, Half);
        for (int j = 0; j < 32; j++) bytes[2 + j] = unchecked((byte)(sbyte)(8 * j - 128));
        // Block 1: d = -2, q_0 = 127, q_1 = -128, others 0 -> -254, 256, 0...
        PutHalf(bytes, 34, MinusTwo);
        bytes[36] = 127;
        bytes[37] = 0x80;
        var x = Dequantize(GgmlType.Q8_0, bytes);
        for (int j = 0; j < 32; j++) Assert.Equal(4f * j - 64f, x[j]);
        Assert.Equal(-64f, x[0]);
        Assert.Equal(60f, x[31]);
        Assert.Equal(-254f, x[32]);
        Assert.Equal(256f, x[33]);
        for (int j = 34; j < 64; j++) Assert.Equal(0f, x[j]);
    }

    [Fact]
    public void Q4_0LowNibblesAreTheFirstHalf()
    {
        // d = 0.25; byte j holds value j in its low nibble and value j + 16 in its high nibble.
        // Low nibble j, high nibble 15 - j: x_j = (j - 8)/4, x_(j+16) = (15 - j - 8)/4 = (7 - j)/4.
        var bytes = new byte[18];
        PutHalf(bytes, 0, Quarter);
        for (int j = 0; j < 16; j++) bytes[2 + j] = (byte)(j | ((15 - j) << 4));
        var x = Dequantize(GgmlType.Q4_0, bytes);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal((j - 8) / 4f, x[j]);
            Assert.Equal((7 - j) / 4f, x[j + 16]);
        }
        Assert.Equal(-2f, x[0]);
        Assert.Equal(1.75f, x[16]);
    }

    [Fact]
    public void Q4_1AddsTheMinimum()
    {
        // d = 0.5, m = -1: x = q/2 - 1. Byte j: low nibble j (value j), high nibble 15 (value j + 16).
        var bytes = new byte[20];
        PutHalf(bytes, 0, Half);
        PutHalf(bytes, 2, MinusOne);
        for (int j = 0; j < 16; j++) bytes[4 + j] = (byte)(j | 0xF0);
        var x = Dequantize(GgmlType.Q4_1, bytes);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(j / 2f - 1f, x[j]);
            Assert.Equal(6.5f, x[j + 16]);   // 15/2 - 1
        }
    }

    [Fact]
    public void Q5_FifthBitsComeFromTheUint32()
    {
        // Q5_0: d = 1, qh = 0x80000001 (bit 0: value 0, bit 31: value 31), nibbles 0 except byte 15's
        // high nibble (value 31) = 15. x = q - 16: value 0 -> 16-16 = 0, value 31 -> (15|16)-16 = 15, others -16.
        var q5 = new byte[22];
        PutHalf(q5, 0, One);
        BinaryPrimitives.WriteUInt32LittleEndian(q5.AsSpan(2), 0x80000001u);
        q5[6 + 15] = 0xF0;
        var x = Dequantize(GgmlType.Q5_0, q5);
        Assert.Equal(0f, x[0]);
        Assert.Equal(15f, x[31]);
        for (int j = 1; j < 31; j++) Assert.Equal(-16f, x[j]);

        // Q5_1: d = 2, m = 0.5, same bits: value 31 = 31·2 + 0.5, value 0 = 16·2 + 0.5, others 0.5.
        var q51 = new byte[24];
        PutHalf(q51, 0, Two);
        PutHalf(q51, 2, Half);
        BinaryPrimitives.WriteUInt32LittleEndian(q51.AsSpan(4), 0x80000001u);
        q51[8 + 15] = 0xF0;
        var y = Dequantize(GgmlType.Q5_1, q51);
        Assert.Equal(32.5f, y[0]);
        Assert.Equal(62.5f, y[31]);
        Assert.Equal(0.5f, y[1]);
    }

    /// <summary>
    /// Q4_K/Q5_K header with d = 1, dmin = 0.5 and sub-block scales {1, 2, 3, 4, 40, 50, 60, 63}, mins
    /// {0, 1, 2, 3, 33, 17, 48, 5}, packed by hand: bytes 0-3 = scale j (6 bits) | top 2 bits of scale
    /// j+4 in bits 6-7; bytes 4-7 the same for mins; bytes 8-11 = low nibble of scale j+4 | low nibble of
    /// min j+4 in the high nibble.
    /// </summary>
    static readonly int[] KScales = [1, 2, 3, 4, 40, 50, 60, 63];
    static readonly int[] KMins = [0, 1, 2, 3, 33, 17, 48, 5];
    static readonly byte[] KScaleBytes =
    [
        0x81, // 1 | (40 >> 4 = 2) << 6
        0xC2, // 2 | (50 >> 4 = 3) << 6
        0xC3, // 3 | (60 >> 4 = 3) << 6
        0xC4, // 4 | (63 >> 4 = 3) << 6
        0x80, // 0 | (33 >> 4 = 2) << 6
        0x41, // 1 | (17 >> 4 = 1) << 6
        0xC2, // 2 | (48 >> 4 = 3) << 6
        0x03, // 3 | ( 5 >> 4 = 0) << 6
        0x18, // 40 & 15 = 8  | (33 & 15 = 1) << 4
        0x12, // 50 & 15 = 2  | (17 & 15 = 1) << 4
        0x0C, // 60 & 15 = 12 | (48 & 15 = 0) << 4
        0x5F, // 63 & 15 = 15 | ( 5 & 15 = 5) << 4
    ];

    [Fact]
    public void Q4_KUnpacksSixBitScalesAndMins()
    {
        var block = new byte[144];
        PutHalf(block, 0, One);
        PutHalf(block, 2, Half);
        KScaleBytes.CopyTo(block, 4);
        // Group g (64 values) is bytes 16 + 32g ..: low nibbles are sub-block 2g, high nibbles 2g + 1.
        // Byte l of a group: low nibble l % 16, high nibble 15 - l % 16.
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) block[16 + 32 * g + l] = (byte)((l % 16) | ((15 - l % 16) << 4));
        var x = Dequantize(GgmlType.Q4_K, block);
        for (int e = 0; e < 256; e++)
        {
            int g = e / 64, within = e % 64, sub = 2 * g + within / 32, l = within % 32;
            int q = within < 32 ? l % 16 : 15 - l % 16;
            Assert.Equal(1f * KScales[sub] * q - 0.5f * KMins[sub], x[e]);
        }
        Assert.Equal(0f, x[0]);        // sub 0: 1·0 - 0
        Assert.Equal(13.5f, x[40]);    // sub 1, q = 15 - 8: 2·7 - 0.5·1
        Assert.Equal(183.5f, x[133]);  // sub 4, q = 5: 40·5 - 0.5·33
        Assert.Equal(741.5f, x[160]);  // sub 5, q = 15: 50·15 - 0.5·17
        Assert.Equal(876f, x[207]);    // sub 6, q = 15: 60·15 - 0.5·48
        Assert.Equal(-2.5f, x[255]);   // sub 7, q = 0: 0 - 0.5·5
    }

    [Fact]
    public void Q5_KFifthBitsAreBitPlanesPerGroup()
    {
        var block = new byte[176];
        PutHalf(block, 0, One);
        PutHalf(block, 2, Half);
        KScaleBytes.CopyTo(block, 4);
        // qh at 16..47, nibbles at 48..175 all zero: q = 16 where a fifth bit is set, else 0.
        block[16 + 3] = 0x04;   // bit 2 = group 1's low nibbles: value 64 + 3 (sub-block 2)
        block[16 + 0] = 0x80;   // bit 7 = group 3's high nibbles: value 192 + 32 + 0 (sub-block 7)
        var x = Dequantize(GgmlType.Q5_K, block);
        Assert.Equal(47f, x[67]);       // 3·16 - 0.5·2
        Assert.Equal(-1f, x[66]);       // 3·0 - 0.5·2
        Assert.Equal(1005.5f, x[224]);  // 63·16 - 0.5·5
        Assert.Equal(-2.5f, x[225]);
        Assert.Equal(0f, x[0]);
    }

    [Fact]
    public void Q6_KPlacesLowAndHighBits()
    {
        // d = 0.5, scales s_k = k - 8, all ql/qh zero: q = 0 - 32 everywhere, x_e = 0.5·s_(e/16)·(-32).
        var block = new byte[210];
        for (int k = 0; k < 16; k++) block[192 + k] = unchecked((byte)(sbyte)(k - 8));
        PutHalf(block, 208, Half);
        // Value 200 = second half (ql + 64, qh + 32), index 72 = 64 + 8: the high nibble of ql[64 + 8]
        // and bits 4-5 of qh[32 + 8]. q = 5 | 2 << 4 = 37 -> 5; scale s_12 = 4: 0.5·4·5 = 10.
        block[64 + 8] = 0x50;
        block[128 + 32 + 8] = 0x20;
        // Value 33 = first half, index 32 + 1: the low nibble of ql[33] and bits 2-3 of qh[1].
        // q = 15 | 3 << 4 = 63 -> 31; scale s_2 = -6: 0.5·(-6)·31 = -93.
        block[33] = 0x0F;
        block[128 + 1] = 0x0C;
        var x = Dequantize(GgmlType.Q6_K, block);
        for (int e = 0; e < 256; e++)
        {
            float expected = e switch { 200 => 10f, 33 => -93f, _ => 0.5f * (e / 16 - 8) * -32f };
            Assert.Equal(expected, x[e]);
        }
        Assert.Equal(128f, x[0]);     // 0.5·(-8)·(-32)
        Assert.Equal(-112f, x[255]);  // 0.5·7·(-32)
    }

    [Fact]
    public void Q2_KShiftsThroughEachByte()
    {
        // scales[sub] = sub (low nibble) | 2 << 4 (min 2); d = 1, dmin = 0.25: x = sub·q - 0.5.
        // Every quant byte is 0b11_10_01_00, so the 2-bit field at shift 2s is s: value e has
        // s = (e % 128) / 32 and sub-block 8·(e / 128) + 2s + (e % 32) / 16.
        var block = new byte[84];
        for (int sub = 0; sub < 16; sub++) block[sub] = (byte)(sub | (2 << 4));
        for (int i = 0; i < 64; i++) block[16 + i] = 0xE4;
        PutHalf(block, 80, One);
        PutHalf(block, 82, Quarter);
        var x = Dequantize(GgmlType.Q2_K, block);
        for (int e = 0; e < 256; e++)
        {
            int s = e % 128 / 32, sub = 8 * (e / 128) + 2 * s + e % 32 / 16;
            Assert.Equal(sub * s - 0.5f, x[e]);
        }
        Assert.Equal(-0.5f, x[0]);
        Assert.Equal(1.5f, x[40]);    // sub 2, q 1
        Assert.Equal(44.5f, x[255]);  // sub 15, q 3
    }

    [Fact]
    public void Q3_KScalesAndHighBitMask()
    {
        // Sixteen 6-bit scales stored +32: value 33 (scale 1) is low nibble 1, high bits 2. Bytes 0-7 carry
        // the low nibbles of scales j (low half) and j + 8 (high half): 0x11; bytes 8-11 carry four 2-bit
        // fields (scale j at byte 8 + j % 4, bits 2·(j / 4)): 0b10101010.
        var block = new byte[110];
        for (int i = 0; i < 32; i++) block[i] = 0xFF;           // hmask set: no -4
        for (int i = 0; i < 64; i++) block[32 + i] = 0xE4;      // 2-bit fields 0, 1, 2, 3 by shift
        for (int i = 0; i < 8; i++) block[96 + i] = 0x11;
        for (int i = 0; i < 4; i++) block[104 + i] = 0xAA;
        // Scale 11 = -5, i.e. 27 = 0b01_1011: low nibble 0xB in byte 3's high nibble, high bits 1 in
        // byte 8 + 3, bits 4-5.
        block[96 + 3] = 0xB1;
        block[104 + 3] = 0x9A;
        PutHalf(block, 108, One);
        // hmask bit k of byte l belongs to value 32k + l: clear it for values 0 and 101 (k = 3, l = 5).
        block[0] = 0xFE;
        block[5] = 0xF7;
        var x = Dequantize(GgmlType.Q3_K, block);
        for (int e = 0; e < 256; e++)
        {
            int s = e % 128 / 32, sub = 8 * (e / 128) + 2 * s + e % 32 / 16;
            int scale = sub == 11 ? -5 : 1;
            int q = s - (e is 0 or 101 ? 4 : 0);
            Assert.Equal((float)(scale * q), x[e]);
        }
        Assert.Equal(-4f, x[0]);
        Assert.Equal(-1f, x[101]);    // q 3 - 4
        Assert.Equal(-5f, x[176]);    // sub-block 11 (values 176..191): -5·1
    }

    [Fact]
    public void F16RoundsToNearestEven()
    {
        float ulp = MathF.ScaleB(1f, -10);                    // fp16 spacing in [1, 2)
        Assert.Equal(
            new ushort[] { 0x3C00, 0x3C00, 0x3C02, 0x3C01, 0x3C01, 0x8000, 0xC000 },
            QuantizeHalves(GgmlType.F16,
                1f,
                1f + ulp / 2,                                    // tie: to the even 1.0
                1f + 3 * ulp / 2,                                // tie between 0x3C01 and 0x3C02: even
                1f + ulp / 2 + MathF.ScaleB(1f, -20),            // just above the tie: up
                1f + ulp,                                        // exact
                -0f,
                -2f));
        Assert.Equal(
            new ushort[] { 0x7BFF, 0x7BFF, 0x7C00, 0x7C00, 0xFC00, 0x7C00 },
            QuantizeHalves(GgmlType.F16,
                65504f,                                          // largest half
                65519.996f,                                      // below 65504 + 16 (half an ulp): down
                65520f,                                          // tie with 65536: the even one, ∞
                float.MaxValue, float.NegativeInfinity, float.PositiveInfinity));
        Assert.Equal(
            new ushort[] { 0x0001, 0x0000, 0x8000, 0x0001, 0x0002, 0x0002, 0x0400, 0x0400, 0x03FE },
            QuantizeHalves(GgmlType.F16,
                MathF.ScaleB(1f, -24),                           // smallest subnormal half
                MathF.ScaleB(1f, -25),                           // half of it: tie, to the even 0
                -MathF.ScaleB(1f, -25),
                MathF.ScaleB(1.5f, -25),                         // above the tie: 1
                MathF.ScaleB(3f, -25),                           // 1.5 units: tie, to the even 2
                MathF.ScaleB(5f, -25),                           // 2.5 units: tie, to the even 2
                MathF.ScaleB(1f, -14),                           // smallest normal
                MathF.ScaleB(2047f, -25),                        // 1023.5 units: tie, to the even 1024
                MathF.ScaleB(2045f, -25)));                      // 1022.5 units: tie, to the even 1022
    }

    [Fact]
    public void F16NaNKeepsOnlyTheSign()
    {
        // ggml's fp32->fp16 returns the quiet NaN 0x7E00 with the input's sign, payload dropped.
        Assert.Equal(
            new ushort[] { 0x7E00, 0xFE00, 0x7E00, 0x7E00 },
            QuantizeHalves(GgmlType.F16, Bits(0x7FC00000), Bits(0xFFC00000), Bits(0x7F800001), Bits(0x7FFFFFFF)));
    }

    [Fact]
    public void F16ToFloatIsExact()
    {
        var bytes = new byte[16];
        ushort[] halves = [0x0001, 0x03FF, 0x3C00, 0xC000, 0x7C00, 0xFC00, 0x8000, 0x7BFF];
        for (int i = 0; i < halves.Length; i++) PutHalf(bytes, 2 * i, halves[i]);
        var x = Dequantize(GgmlType.F16, bytes);
        Assert.Equal(MathF.ScaleB(1f, -24), x[0]);
        Assert.Equal(1023 * MathF.ScaleB(1f, -24), x[1]);
        Assert.Equal(1f, x[2]);
        Assert.Equal(-2f, x[3]);
        Assert.Equal(float.PositiveInfinity, x[4]);
        Assert.Equal(float.NegativeInfinity, x[5]);
        Assert.Equal(0x80000000u, BitConverter.SingleToUInt32Bits(x[6]));
        Assert.Equal(65504f, x[7]);

        PutHalf(bytes, 0, 0x7E00);
        Assert.True(float.IsNaN(Dequantize(GgmlType.F16, bytes)[0]));
    }

    [Fact]
    public void BF16RoundsToNearestEvenAndQuietsNaN()
    {
        float ulp = MathF.ScaleB(1f, -7);                     // bf16 spacing in [1, 2)
        Assert.Equal(
            new ushort[] { 0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7F80, 0xFF80, 0x0000 },
            QuantizeHalves(GgmlType.BF16,
                1f,
                1f + ulp / 2,                                    // tie: to the even 1.0
                1f + 3 * ulp / 2,                                // tie: to the even 0x3F82
                1f + ulp / 2 + MathF.ScaleB(1f, -20),            // above the tie: up
                float.MaxValue,                                  // 0x7F7FFFFF rounds up into ∞
                float.PositiveInfinity, float.NegativeInfinity,
                MathF.ScaleB(1f, -140)));                        // float subnormal 0x00000200, under half the smallest bf16 (2^-133): 0
        // NaN: the top 16 bits with the quiet bit (bit 6) set, never rounded.
        Assert.Equal(
            new ushort[] { 0x7FC0, 0xFFC0, 0x7FC1, 0x7FC0 },
            QuantizeHalves(GgmlType.BF16, Bits(0x7F800001), Bits(0xFF800001), Bits(0x7FC1FFFF), Bits(0x7FC00000)));

        var bytes = new byte[4];
        PutHalf(bytes, 0, 0x3F80);
        PutHalf(bytes, 2, 0xC040);
        Assert.Equal(new[] { 1f, -3f }, Dequantize(GgmlType.BF16, bytes));
    }

    [Fact]
    public void Q8_0QuantizeRoundsHalvesAwayFromZero()
    {
        // amax = 127 gives d = 1 exactly (fp16 0x3C00) and id = 1, so q = roundf(x): halves away from zero.
        var x = new float[32];
        x[0] = 127f;
        for (int j = 1; j < 32; j++) x[j] = j - 16 + 0.5f;    // -14.5 .. 15.5
        var b = Quantize(GgmlType.Q8_0, x);
        Assert.Equal(One, BinaryPrimitives.ReadUInt16LittleEndian(b));
        Assert.Equal(127, (sbyte)b[2]);
        for (int j = 1; j < 32; j++)
        {
            int k = j - 16;                                   // x = k + 0.5: away from zero is k + 1 for k >= 0, k below
            Assert.Equal(k >= 0 ? k + 1 : k, (sbyte)b[2 + j]);
        }
        Assert.Equal(-15, (sbyte)b[3]);    // -14.5
        Assert.Equal(-1, (sbyte)b[2 + 15]);  // -0.5
        Assert.Equal(1, (sbyte)b[2 + 16]);   // 0.5 (banker's rounding would give 0)
        Assert.Equal(16, (sbyte)b[2 + 31]);  // 15.5

        // Negative extreme: amax 254 -> d = 2 (0x4000), id = 0.5; 3 -> 1.5 -> 2, -3 -> -2, 1 -> 1, -1 -> -1.
        var y = new float[32];
        y[0] = -254f; y[1] = 3f; y[2] = -3f; y[3] = 1f; y[4] = -1f;
        var c = Quantize(GgmlType.Q8_0, y);
        Assert.Equal(Two, BinaryPrimitives.ReadUInt16LittleEndian(c));
        Assert.Equal(new sbyte[] { -127, 2, -2, 1, -1, 0 }, c.Skip(2).Take(6).Select(v => (sbyte)v).ToArray());

        // All zeros: d = 0, id = 0, every byte 0.
        Assert.All(Quantize(GgmlType.Q8_0, new float[32]), v => Assert.Equal(0, v));
    }

    [Fact]
    public void Q4_0QuantizeMapsTheLargestMagnitudeToMinusEight()
    {
        // max by magnitude -8 -> d = -8 / -8 = 1, id = 1; q = min(15, trunc(x + 8.5)): x rounded half up, + 8.
        var x = new float[32];
        x[0] = -8f;      // trunc(0.5)  = 0
        x[1] = -7.5f;    // trunc(1.0)  = 1
        x[2] = -1.5f;    // trunc(7.0)  = 7  (half up: -1)
        x[3] = -0.5f;    // trunc(8.0)  = 8  (half up: 0)
        x[4] = 0.49f;    // trunc(8.99) = 8
        x[5] = 0.5f;     // trunc(9.0)  = 9
        x[6] = 3f;       // 11
        x[7] = 7.9f;     // trunc(16.4) = 16 -> clamped to 15
        x[16] = 2f;      // second half goes to the high nibbles: 10
        x[17] = -2f;     // 6
        var b = Quantize(GgmlType.Q4_0, x);
        Assert.Equal(One, BinaryPrimitives.ReadUInt16LittleEndian(b));
        int[] low = [0, 1, 7, 8, 8, 9, 11, 15, 8, 8, 8, 8, 8, 8, 8, 8];   // zeros -> 8
        int[] high = [10, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8];
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(low[j] | (high[j] << 4)), b[2 + j]);

        // The first value of largest magnitude wins: 8 before -8 gives d = -1, and -8 (x·id + 8.5 = 16.5)
        // clamps to 15, which reads back as (15 - 8)·(-1) = -7. The other order gives d = 1 and 8 -> 7.
        var y = new float[32];
        y[0] = 8f; y[1] = -8f;
        var c = Quantize(GgmlType.Q4_0, y);
        Assert.Equal(MinusOne, BinaryPrimitives.ReadUInt16LittleEndian(c));
        Assert.Equal(new[] { 8f, -7f }, Dequantize(GgmlType.Q4_0, c).Take(2).ToArray());
        y[0] = -8f; y[1] = 8f;
        Assert.Equal(new[] { -8f, 7f }, Dequantize(GgmlType.Q4_0, Quantize(GgmlType.Q4_0, y)).Take(2).ToArray());
    }

    [Fact]
    public void Q4_0RoundsTheProductBeforeAddingEightAndAHalf()
    {
        // Block maximum -24: d = 3 (fp16 0x4200), id = float(1/3) = 11184811·2^-25 = (1 + 2^-25)/3.
        // x = -13.5: x·id = -4.5 - 4.5·2^-25 = -4.5 - 1.3e-7, which rounds to the float -4.5 (floats near
        // 4.5 are 2^-21 apart); -4.5 + 8.5 = 4 exactly, so q = 4 (x/d = -4.5 rounded half up to -4).
        // A fused multiply-add would round -4.5 - 1.3e-7 + 8.5 = 4 - 1.3e-7 once, to the float below 4
        // (2^-22 apart there), and truncate it to 3. ggml-base is built without FMA: 4 it is. Likewise
        // -16.5, -19.5, -22.5 (x/d = -5.5, -6.5, -7.5) give 3, 2, 1; -24 gives 0.
        var x = new float[32];
        x[0] = -24f; x[1] = -13.5f; x[2] = -16.5f; x[3] = -19.5f; x[4] = -22.5f;
        var b = Quantize(GgmlType.Q4_0, x);
        Assert.Equal((ushort)0x4200, BinaryPrimitives.ReadUInt16LittleEndian(b));
        Assert.Equal(new byte[] { 0x80, 0x84, 0x83, 0x82, 0x81, 0x88 }, b.Skip(2).Take(6).ToArray());   // zeros -> 8 in every other nibble
        Assert.Equal(new[] { -24f, -12f, -15f, -18f, -21f }, Dequantize(GgmlType.Q4_0, b).Take(5).ToArray());
    }

    static float[] RandomValues(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            x[i] = (float)(g * (1 + i / 32 % 7));   // a different spread per block
        }
        return x;
    }

    [Fact]
    public void Q8_0RoundTripIsWithinHalfAStep()
    {
        // q = round(x/d) with d = amax/127, read back with d rounded to fp16 (relative error <= 2^-11):
        // |x - q·d16| <= d/2 + 127·|d - d16| <= d·(1/2 + 127·2^-11).
        var x = RandomValues(32 * 512, 1);
        var back = Dequantize(GgmlType.Q8_0, Quantize(GgmlType.Q8_0, x));
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[32 * b + j]));
            float d = amax / 127f, bound = d * (0.5f + 127f / 2048f) * 1.0001f;
            for (int j = 0; j < 32; j++) Assert.InRange(Math.Abs(x[32 * b + j] - back[32 * b + j]), 0f, bound);
        }
    }

    [Fact]
    public void Q4_0RoundTripIsWithinOneStep()
    {
        // d = amax/8 in magnitude; x/d lies in [-8, 8] and q - 8 = clamp(floor(x/d + 0.5), -8, 7): within d/2,
        // except above 7.5 steps on the side opposite the extreme, clamped to 7 (within one step). Reading
        // back with d rounded to fp16 adds at most 8·|d|·2^-11.
        var x = RandomValues(32 * 512, 2);
        var back = Dequantize(GgmlType.Q4_0, Quantize(GgmlType.Q4_0, x));
        double meanError = 0;
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[32 * b + j]));
            float d = amax / 8f;
            for (int j = 0; j < 32; j++)
            {
                float v = x[32 * b + j], error = Math.Abs(v - back[32 * b + j]);
                Assert.InRange(error, 0f, d * (1f + 8f / 2048f) * 1.0001f);
                if (Math.Abs(v) / d <= 7.5f) Assert.InRange(error, 0f, d * (0.5f + 8f / 2048f) * 1.0001f);
                if (Math.Abs(v) == amax) Assert.InRange(error, 0f, d * (8f / 2048f) * 1.0001f);   // the extreme is exact up to d's fp16
                meanError += error / d;
            }
        }
        // Rounding error is spread evenly over [-d/2, d/2]: about d/4 on average.
        Assert.InRange(meanError / x.Length, 0.2, 0.3);
    }

    [Fact]
    public void HalvesRoundTripWithinTheirPrecision()
    {
        var x = RandomValues(4096, 3);
        var f16 = Dequantize(GgmlType.F16, Quantize(GgmlType.F16, x));
        var bf16 = Dequantize(GgmlType.BF16, Quantize(GgmlType.BF16, x));
        var f32 = Dequantize(GgmlType.F32, Quantize(GgmlType.F32, x));
        for (int i = 0; i < x.Length; i++)
        {
            // Half an ulp, relative: 2^-11 for fp16 (normal range), 2^-8 for bf16; F32 is a copy.
            Assert.InRange(Math.Abs(x[i] - f16[i]), 0f, Math.Max(Math.Abs(x[i]) * MathF.ScaleB(1f, -11), MathF.ScaleB(1f, -25)));
            Assert.InRange(Math.Abs(x[i] - bf16[i]), 0f, Math.Abs(x[i]) * MathF.ScaleB(1f, -8));
            Assert.Equal(x[i], f32[i]);
        }
    }

    [Fact]
    public void LengthsMustFit()
    {
        var values = new float[64];
        Assert.Throws<ArgumentException>(() => GgmlTypes.Quantize(GgmlType.Q8_0, values, new byte[67]));
        Assert.Throws<ArgumentException>(() => GgmlTypes.Quantize(GgmlType.Q8_0, new float[48], new byte[51]));
        Assert.Throws<ArgumentException>(() => GgmlTypes.Dequantize(GgmlType.Q4_K, new byte[144], new float[255]));
        Assert.Throws<ArgumentException>(() => GgmlTypes.Dequantize(GgmlType.Q4_K, new byte[143], new float[256]));
        Assert.Throws<NotSupportedException>(() => GgmlTypes.Quantize(GgmlType.Q4_K, new float[256], new byte[144]));
        Assert.Throws<NotSupportedException>(() => GgmlTypes.Dequantize(GgmlType.IQ2_XXS, new byte[66], new float[256]));
        Assert.Throws<NotSupportedException>(() => GgmlTypes.Dequantize((GgmlType)123, new byte[4], new float[1]));
        GgmlTypes.Dequantize(GgmlType.Q4_K, ReadOnlySpan<byte>.Empty, Span<float>.Empty);   // nothing to do is fine
    }

    static byte[] RandomBlocks(GgmlType t, int blocks, int seed, params int[] halfOffsets)
    {
        var rng = new Random(seed);
        int size = GgmlTypes.BlockBytes(t);
        var bytes = new byte[blocks * size];
        rng.NextBytes(bytes);
        for (int b = 0; b < blocks; b++)
            foreach (int at in halfOffsets)
                PutHalf(bytes, b * size + at, (ushort)(rng.Next(0x0400, 0x5000) | (rng.Next(2) << 15)));   // finite, moderate
        return bytes;
    }

    [Fact]
    public void LargeInputsSplitOverCoresGiveTheSameValues()
    {
        // Enough values to be split into tasks; the whole must equal block-by-block conversion.
        foreach (var (t, halves) in new[] { (GgmlType.Q8_0, new[] { 0 }), (GgmlType.Q4_K, new[] { 0, 2 }), (GgmlType.Q6_K, new[] { 208 }) })
        {
            int be = GgmlTypes.BlockElements(t), bb = GgmlTypes.BlockBytes(t);
            int blocks = (1 << 19) / be + 3;
            var bytes = RandomBlocks(t, blocks, 7, halves);
            var whole = Dequantize(t, bytes);
            var single = new float[be];
            for (int b = 0; b < blocks; b++)
            {
                GgmlTypes.Dequantize(t, bytes.AsSpan(b * bb, bb), single);
                for (int j = 0; j < be; j++) Assert.Equal(BitConverter.SingleToUInt32Bits(single[j]), BitConverter.SingleToUInt32Bits(whole[b * be + j]));
            }
        }
    }

    [Fact]
    public void VectorAndScalarKernelsAgreeBitForBit()
    {
        var cases = new[]
        {
            (GgmlType.Q4_0, new[] { 0 }), (GgmlType.Q8_0, new[] { 0 }), (GgmlType.Q4_K, new[] { 0, 2 }),
            (GgmlType.Q5_K, new[] { 0, 2 }), (GgmlType.Q6_K, new[] { 208 }),
        };
        bool saved = GgmlTypes.UseVectors;
        try
        {
            foreach (var (t, halves) in cases)
            {
                var bytes = RandomBlocks(t, 64, 11, halves);
                GgmlTypes.UseVectors = true;
                var vector = Dequantize(t, bytes);
                GgmlTypes.UseVectors = false;
                var scalar = Dequantize(t, bytes);
                for (int i = 0; i < vector.Length; i++)
                    Assert.Equal(BitConverter.SingleToUInt32Bits(scalar[i]), BitConverter.SingleToUInt32Bits(vector[i]));
            }
            // Every fp16 and bf16 bit pattern, NaNs and subnormals included.
            var all = new byte[2 * 65536];
            for (int i = 0; i < 65536; i++) BinaryPrimitives.WriteUInt16LittleEndian(all.AsSpan(2 * i), (ushort)i);
            foreach (var t in new[] { GgmlType.F16, GgmlType.BF16 })
            {
                GgmlTypes.UseVectors = true;
                var vector = Dequantize(t, all);
                GgmlTypes.UseVectors = false;
                var scalar = Dequantize(t, all);
                for (int i = 0; i < vector.Length; i++)
                    Assert.Equal(BitConverter.SingleToUInt32Bits(scalar[i]), BitConverter.SingleToUInt32Bits(vector[i]));
            }
        }
        finally
        {
            GgmlTypes.UseVectors = saved;
        }
    }
}
