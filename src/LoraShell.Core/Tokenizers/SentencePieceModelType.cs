namespace LoraShell.Core.Tokenizers;

/// <summary>
/// The algorithm a SentencePiece model file was trained with: ModelProto.trainer_spec (field 2).model_type
/// (field 3): 1 Unigram (T5, mT5), 2 BPE (Llama), 3 word, 4 char; Unigram when the field is absent, as in
/// SentencePiece. Read straight from the protobuf, which is all this needs of it.
/// </summary>
public static class SentencePieceModelType
{
    public const int Unigram = 1, Bpe = 2;

    public static int Read(ReadOnlySpan<byte> model)
    {
        var trainerSpec = Field(model, 2, lengthDelimited: true);
        if (trainerSpec is not var (start, length)) return Unigram;
        return Field(model.Slice(start, length), 3, lengthDelimited: false) is var (value, _) ? value : Unigram;
    }

    /// <summary>
    /// The model with a BOS id Microsoft.ML.Tokenizers can load: T5's files have none (bos_id -1), which its
    /// Unigram model indexes anyway and fails on; pointing it at EOS changes no encoding (a text is encoded
    /// without BOS here, and EOS is a control piece already). Other files come back as they are.
    /// </summary>
    public static byte[] WithBosIdForLoading(byte[] model)
    {
        var span = model.AsSpan();
        if (Field(span, 2, lengthDelimited: true) is not var (start, length)) return model;
        var trainer = span.Slice(start, length);
        if (Field(trainer, 41, lengthDelimited: false) is not var (bos, _) || bos >= 0) return model;
        int eos = Field(trainer, 42, lengthDelimited: false) is var (e, _) ? e : 2; // SentencePiece's default eos_id
        var patched = new MemoryStream();
        patched.Write(trainer);
        WriteVarint(patched, 41 << 3);
        WriteVarint(patched, (ulong)eos); // a later occurrence of a field wins in protobuf
        var output = new MemoryStream();
        output.Write(span[..HeaderStart(span, start)]);
        WriteVarint(output, 2 << 3 | 2);
        WriteVarint(output, (ulong)patched.Length);
        output.Write(patched.ToArray());
        output.Write(span[(start + length)..]);
        return output.ToArray();
    }

    /// <summary>Where the key and length of the length-delimited field whose payload starts at <paramref name="payload"/> begin.</summary>
    static int HeaderStart(ReadOnlySpan<byte> message, int payload)
    {
        int i = 0;
        while (i < message.Length)
        {
            int header = i;
            ulong key = Varint(message, ref i);
            int wire = (int)(key & 7);
            if (wire == 0) Varint(message, ref i);
            else if (wire == 1) i += 8;
            else if (wire == 5) i += 4;
            else if (wire == 2)
            {
                int length = checked((int)Varint(message, ref i));
                if (i == payload) return header;
                i += length;
            }
            else throw new FormatException($"wire type {wire} at byte {header} is not protobuf's");
        }
        throw new FormatException("the field is not in the message");
    }

    static void WriteVarint(Stream s, ulong v) { do { byte b = (byte)(v & 0x7F); v >>= 7; s.WriteByte(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0); }

    /// <summary>The first occurrence of a field: (offset, length) of a length-delimited one, (value, 0) of a varint; null when absent.</summary>
    static (int, int)? Field(ReadOnlySpan<byte> message, int number, bool lengthDelimited)
    {
        int i = 0;
        while (i < message.Length)
        {
            ulong key = Varint(message, ref i);
            int wire = (int)(key & 7), field = (int)(key >> 3);
            switch (wire)
            {
                case 0:
                    ulong value = Varint(message, ref i);
                    if (field == number && !lengthDelimited) return ((int)(long)value, 0); // int32 fields store -1 as 2^64 - 1
                    break;
                case 1: i += 8; break;
                case 5: i += 4; break;
                case 2:
                    int length = checked((int)Varint(message, ref i));
                    if (length < 0 || i + length > message.Length) throw new FormatException("a length-delimited field runs past the end of the file");
                    if (field == number && lengthDelimited) return (i, length);
                    i += length;
                    break;
                default: throw new FormatException($"wire type {wire} at byte {i} is not protobuf's");
            }
        }
        return null;
    }

    static ulong Varint(ReadOnlySpan<byte> data, ref int i)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (i >= data.Length) throw new FormatException("a varint runs past the end of the file");
            byte b = data[i++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new FormatException("a varint is longer than 10 bytes");
    }
}
