using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>
/// Reads Karpathy's llama2.c checkpoints — the legacy header (7 int32) and version 1 (<c>ak42</c>
/// magic, 256-byte header) — and converts them to the HF Llama layout: names mapped, and wq/wk rows
/// permuted from interleaved-pair RoPE to HF's rotate-half RoPE.
/// </summary>
public static class Llama2cLoader
{
    const uint MagicV1 = 0x616b3432; // "ak42"
    const int V1HeaderBytes = 256;
    const int LegacyHeaderBytes = 7 * 4;

    public static CausalLM Load(string path, WeightFormat? format = null)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw LoraShellException.NotFound("ModelFileNotFound", $"Model file '{full}' does not exist.", full);
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var (config, layout) = ReadHeader(full, stream);
        var model = new CausalLM(config, (format ?? WeightFormat.Default) with { Initialize = false });
        try
        {
            var tensors = ReadWeights(full, stream, config, layout);
            try
            {
                var shapes = tensors.ToDictionary(p => p.Key, p => p.Value.shape);
                StateDictLoader.Load(model, full, shapes, name => tensors[name].alias());
            }
            finally { foreach (var t in tensors.Values) t.Dispose(); }
        }
        catch { model.Dispose(); throw; }
        return model;
    }

    enum Layout { Legacy, Version1 }

    static LoraShellException Bad(string file, string problem)
        => LoraShellException.InvalidData("InvalidLlama2cCheckpoint", $"'{file}' is not a valid llama2.c checkpoint: {problem}.", file);

    static (ModelConfig, Layout) ReadHeader(string file, FileStream stream)
    {
        long length = stream.Length;
        if (length < LegacyHeaderBytes) throw Bad(file, $"the file is {length} bytes, shorter than the {LegacyHeaderBytes}-byte header");
        var reader = new BinaryReader(stream);
        uint first = reader.ReadUInt32();
        Layout layout;
        int[] h = new int[7];
        bool shared;
        if (first == MagicV1)
        {
            if (length < V1HeaderBytes) throw Bad(file, $"the file is {length} bytes, shorter than the {V1HeaderBytes}-byte version-1 header");
            int version = reader.ReadInt32();
            if (version != 1) throw Bad(file, $"header version {version} is not supported (only legacy and version 1 fp32 checkpoints are)");
            for (int i = 0; i < 7; i++) h[i] = reader.ReadInt32();
            shared = reader.ReadByte() != 0;
            stream.Seek(V1HeaderBytes, SeekOrigin.Begin);
            layout = Layout.Version1;
        }
        else
        {
            h[0] = (int)first;
            for (int i = 1; i < 7; i++) h[i] = reader.ReadInt32();
            shared = h[5] > 0;
            if (h[5] == int.MinValue) throw Bad(file, "vocab_size is -2^31");
            h[5] = Math.Abs(h[5]);
            layout = Layout.Legacy;
        }
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocab = h[5], seqLen = h[6];
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0)
            throw Bad(file, $"header values must be positive (dim={dim}, hidden_dim={hidden}, n_layers={layers}, n_heads={heads}, n_kv_heads={kvHeads}, vocab_size={vocab}, seq_len={seqLen})");
        if (dim % heads != 0 || heads % kvHeads != 0 || (dim / heads) % 2 != 0)
            throw Bad(file, $"dim={dim}, n_heads={heads}, n_kv_heads={kvHeads} do not describe whole, even-sized heads");

        var config = new ModelConfig
        {
            HiddenSize = dim, IntermediateSize = hidden, NumHiddenLayers = layers, NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads, VocabSize = vocab, MaxPositionEmbeddings = seqLen,
            RmsNormEps = 1e-5, RopeTheta = 10000.0, TieWordEmbeddings = shared, BosTokenId = 1, EosTokenId = 2,
        };

        long expected;
        try { expected = checked((layout == Layout.Version1 ? V1HeaderBytes : LegacyHeaderBytes) + 4 * FloatCount(config, layout)); }
        catch (OverflowException) { throw Bad(file, $"its header (dim={dim}, hidden_dim={hidden}, n_layers={layers}, vocab_size={vocab}) describes more weights than a file can hold"); }
        if (length != expected)
            throw Bad(file, $"its header (dim={dim}, hidden_dim={hidden}, n_layers={layers}, n_heads={heads}, n_kv_heads={kvHeads}, vocab_size={vocab}, seq_len={seqLen}, shared classifier={shared}) implies {expected} bytes, but the file has {length}");
        return (config, layout);
    }

    static long FloatCount(ModelConfig c, Layout layout)
    {
        long d = c.HiddenSize, hd = c.IntermediateSize, L = c.NumHiddenLayers, kv = c.KeyValueDim, v = c.VocabSize;
        checked
        {
            long count = v * d + 2 * L * d + L * (2 * d * d + 2 * kv * d) + 3 * L * hd * d + d;
            if (layout == Layout.Legacy) count += (long)c.MaxPositionEmbeddings * c.HeadDim; // stored RoPE tables (re + im)
            if (!c.TieWordEmbeddings) count += v * d;
            return count;
        }
    }

    static Dictionary<string, Tensor> ReadWeights(string file, FileStream stream, ModelConfig c, Layout layout)
    {
        int d = c.HiddenSize, hd = c.IntermediateSize, L = c.NumHiddenLayers, kv = c.KeyValueDim, v = c.VocabSize;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Tensor Read(params long[] shape) => ReadFloats(stream, shape);
        void PerLayer(string suffix, long[] shape, Func<Tensor, Tensor>? convert = null)
        {
            for (int i = 0; i < L; i++)
            {
                var t = Read(shape);
                result[$"model.layers.{i}.{suffix}"] = convert is null ? t : ConvertAndDispose(t, convert);
            }
        }
        Func<Tensor, Tensor> permuteQ = w => RopeRowOrder.ToRotateHalf(w, c.NumAttentionHeads);
        Func<Tensor, Tensor> permuteK = w => RopeRowOrder.ToRotateHalf(w, c.NumKeyValueHeads);

        if (layout == Layout.Legacy)
        {
            result["model.embed_tokens.weight"] = Read(v, d);
            PerLayer("input_layernorm.weight", new long[] { d });
            PerLayer("self_attn.q_proj.weight", new long[] { d, d }, permuteQ);
            PerLayer("self_attn.k_proj.weight", new long[] { kv, d }, permuteK);
            PerLayer("self_attn.v_proj.weight", new long[] { kv, d });
            PerLayer("self_attn.o_proj.weight", new long[] { d, d });
            PerLayer("post_attention_layernorm.weight", new long[] { d });
            PerLayer("mlp.gate_proj.weight", new long[] { hd, d });
            PerLayer("mlp.down_proj.weight", new long[] { d, hd });
            PerLayer("mlp.up_proj.weight", new long[] { hd, d });
            result["model.norm.weight"] = Read(d);
            stream.Seek(4L * c.MaxPositionEmbeddings * c.HeadDim, SeekOrigin.Current); // RoPE tables: recomputed
        }
        else
        {
            PerLayer("input_layernorm.weight", new long[] { d });
            PerLayer("post_attention_layernorm.weight", new long[] { d });
            result["model.norm.weight"] = Read(d);
            result["model.embed_tokens.weight"] = Read(v, d);
            PerLayer("self_attn.q_proj.weight", new long[] { d, d }, permuteQ);
            PerLayer("self_attn.k_proj.weight", new long[] { kv, d }, permuteK);
            PerLayer("self_attn.v_proj.weight", new long[] { kv, d });
            PerLayer("self_attn.o_proj.weight", new long[] { d, d });
            PerLayer("mlp.gate_proj.weight", new long[] { hd, d });
            PerLayer("mlp.down_proj.weight", new long[] { d, hd });
            PerLayer("mlp.up_proj.weight", new long[] { hd, d });
        }
        if (!c.TieWordEmbeddings) result["lm_head.weight"] = Read(v, d);
        if (stream.Position != stream.Length)
            throw Bad(file, $"{stream.Length - stream.Position} bytes remain after the last weight");
        return result;
    }

    static Tensor ConvertAndDispose(Tensor t, Func<Tensor, Tensor> convert)
    {
        var converted = convert(t).contiguous();
        t.Dispose();
        return converted;
    }

    static Tensor ReadFloats(Stream stream, long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var data = new float[count];
        stream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
        return tensor(data, shape);
    }
}
