using LoraShell.Core.IO;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Models.Families;
using LoraShell.Core.Tokenizers;
using static TorchSharp.torch;

namespace LoraShell.Core.Export;

/// <summary>What a GGUF export wrote.</summary>
public sealed record GgufExportResult(FileInfo File, int TensorCount, IReadOnlyList<string> Warnings)
{
    /// <summary>The Ollama Modelfile written beside it, if any.</summary>
    public FileInfo? Modelfile { get; init; }
}

/// <summary>
/// A model as llama.cpp reads it: the family's architecture keys, llama.cpp's tensor names
/// (<see cref="GgufNames"/>), its layouts (q/k rows back in interleaved-pair order for the llama
/// architecture, GPT-2's Conv1D weights transposed to [out, in]), llama 3 rope scaling as the
/// <c>rope_freqs</c> tensor, and the tokenizer with its chat template. Matrices are written in the type
/// asked for; vectors (norms, biases, rope factors) stay F32 as llama.cpp's converter keeps them, and a
/// matrix whose rows do not fill whole blocks of a quantized type falls back to F16 as it does there.
/// </summary>
public static class GgufModelExport
{
    public static readonly GgmlType[] TensorTypes = { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0 };

    /// <summary>The writer with every key and tensor planned (nothing computed yet); warnings for what llama.cpp will not reproduce.</summary>
    public static GgufWriter Plan(CausalLM model, ITextTokenizer? tokenizer, GgmlType type, string name, List<string> warnings)
    {
        if (Array.IndexOf(TensorTypes, type) < 0)
            throw LoraShellException.InvalidArgument("UnsupportedGgufExportType", $"GGUF export writes tensors as {string.Join(", ", TensorTypes.Select(GgmlTypes.Name))} (got {GgmlTypes.Name(type)}).", type);
        var c = model.Config;
        var family = c.Family;
        foreach (var (problem, fatal) in family.GgufLimitations(c))
        {
            if (fatal) throw LoraShellException.InvalidArgument("GgufUnsupportedFeature", $"This {c.ModelType} model uses {problem}; a GGUF file of it would compute something else in llama.cpp, so it is not written.", c.ModelType);
            warnings.Add($"This {c.ModelType} model uses {problem}.");
        }
        if (tokenizer is null)
            throw LoraShellException.InvalidArgument("GgufNeedsTokenizer", "A GGUF model carries its tokenizer, and this model was loaded without one; load it with -TokenizerPath.", name);

        var arch = family.Gguf;
        var w = new GgufWriter();
        w.Add("general.architecture", GgufValue.String(arch.Name));
        w.Add("general.name", GgufValue.String(name));
        w.Add("general.file_type", GgufValue.UInt32(FileType(type)));
        if (type is GgmlType.Q8_0 or GgmlType.Q4_0) w.Add("general.quantization_version", GgufValue.UInt32(2));
        AddHyperparameters(w, arch.Name, c);
        var vocabulary = GgufVocabulary.From(tokenizer, c.VocabSize);
        vocabulary.AddTo(w);
        if (arch.Name == "phi3" && Array.IndexOf(vocabulary.Tokens, "<|endoftext|>") < 0)
            warnings.Add("llama.cpp's phi3 architecture needs a token '<|endoftext|>' in the vocabulary (Phi-3's own tokenizer has it) and refuses a file without one; this tokenizer has none.");

        var map = GgufNames.ModuleMap(c);
        var shapes = family.Tensors(c).ToDictionary(t => t.Name, t => t.Shape, StringComparer.Ordinal);
        var sources = Models.HuggingFaceWriter.TensorSources(model);
        bool conv1d = family.Layout.Storage == ProjectionStorage.Conv1D;
        var projections = model.LinearSlots().Select(s => s.Path + ".weight").ToHashSet(StringComparer.Ordinal);
        var named = sources.Select(p => (Hf: p.Key, Gguf: GgufNames.TensorName(map, p.Key)!, Source: p.Value)).Where(t => t.Gguf is not null);
        foreach (var (hfName, gguf, source) in named.OrderBy(t => WriteOrder(t.Gguf)).ThenBy(t => t.Gguf, StringComparer.Ordinal))
        {
            var shape = shapes.TryGetValue(hfName, out var known) ? known : source().shape;
            bool transpose = conv1d && projections.Contains(hfName);
            if (transpose) shape = new[] { shape[1], shape[0] };
            var layout = RowLayout(c, hfName, map);
            Func<Tensor> data = () =>
            {
                var t = source().to(ScalarType.Float32);
                if (transpose) t = t.t();
                return layout is int heads ? RopeRowOrder.ToInterleaved(t, heads) : t;
            };
            w.AddTensor(gguf, shape, TypeFor(type, shape), data);
        }
        if (c.RopeScaling?.Type == RopeScaling.Llama3)
        {
            var factors = RopeFactors(c);
            w.AddTensor($"{GgufNames.RopeFrequencies}.weight", new long[] { factors.Length }, GgmlType.F32, () => tensor(factors));
        }
        return w;
    }

    /// <summary>Writes the model to <paramref name="path"/> (a temporary sibling renamed into place).</summary>
    public static GgufExportResult Save(CausalLM model, ITextTokenizer? tokenizer, string path, GgmlType type, string name,
        Action<string, double>? progress = null, CancellationToken cancel = default)
    {
        var warnings = new List<string>();
        var w = Plan(model, tokenizer, type, name, warnings);
        int total = w.Tensors.Count(), done = 0;
        AtomicFile.Write(path, s => w.Write(s, t => progress?.Invoke(t, ++done / (double)total), cancel));
        return new GgufExportResult(new FileInfo(Path.GetFullPath(path)), total, warnings);
    }

    /// <summary>llama.cpp's <c>general.file_type</c> (llama_ftype) for a file whose matrices are <paramref name="type"/>.</summary>
    public static uint FileType(GgmlType type) => type switch
    {
        GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q4_0 => 2, GgmlType.Q8_0 => 7, GgmlType.BF16 => 32,
        _ => throw new ArgumentException($"no file type for {type}"),
    };

    static GgmlType TypeFor(GgmlType asked, long[] shape)
    {
        if (shape.Length < 2) return GgmlType.F32;
        if (shape[^1] % GgmlTypes.BlockElements(asked) != 0) return GgmlType.F16;
        return asked;
    }

    /// <summary>Embeddings first, then the layers in order, then the output norm and head, as llama.cpp's converter writes them (readers do not depend on it; people reading a dump do).</summary>
    static (int Group, int Layer) WriteOrder(string gguf)
        => gguf.StartsWith("blk.", StringComparison.Ordinal) ? (1, int.Parse(gguf.Split('.')[1], System.Globalization.CultureInfo.InvariantCulture))
            : gguf.StartsWith(GgufNames.Output, StringComparison.Ordinal) ? (2, 0) : (0, 0);

    /// <summary>For the llama architecture, the head count whose q or k rows (weight or bias) need the interleaved order; else null.</summary>
    internal static int? RowLayout(ModelConfig c, string hfName, IReadOnlyDictionary<string, string> map)
    {
        if (!c.Family.Gguf.InterleavedRope) return null;
        string? gguf = GgufNames.TensorName(map, hfName);
        if (gguf is null) return null;
        if (gguf.EndsWith(".attn_q.weight", StringComparison.Ordinal) || gguf.EndsWith(".attn_q.bias", StringComparison.Ordinal)) return c.NumAttentionHeads;
        if (gguf.EndsWith(".attn_k.weight", StringComparison.Ordinal) || gguf.EndsWith(".attn_k.bias", StringComparison.Ordinal)) return c.NumKeyValueHeads;
        return null;
    }

    /// <summary>
    /// llama.cpp's rope_freqs: per rotary frequency, the divisor it applies to the base frequency — the
    /// default inverse frequency over the scaled one, so llama.cpp's θ_i / f_i is transformers' frequency.
    /// </summary>
    static float[] RopeFactors(ModelConfig c)
    {
        var scaled = RopeFrequencies.InverseFrequencies(c, c.MaxPositionEmbeddings);
        var plain = RopeFrequencies.InverseFrequencies(c with { RopeScaling = null }, c.MaxPositionEmbeddings);
        return plain.Zip(scaled, (p, s) => (float)(p / s)).ToArray();
    }

    static void AddHyperparameters(GgufWriter w, string arch, ModelConfig c)
    {
        w.Add($"{arch}.context_length", GgufValue.UInt32((uint)c.MaxPositionEmbeddings));
        w.Add($"{arch}.embedding_length", GgufValue.UInt32((uint)c.HiddenSize));
        w.Add($"{arch}.block_count", GgufValue.UInt32((uint)c.NumHiddenLayers));
        w.Add($"{arch}.feed_forward_length", GgufValue.UInt32((uint)c.IntermediateSize));
        w.Add($"{arch}.attention.head_count", GgufValue.UInt32((uint)c.NumAttentionHeads));
        w.Add($"{arch}.attention.head_count_kv", GgufValue.UInt32((uint)c.NumKeyValueHeads));
        w.Add($"{arch}.vocab_size", GgufValue.UInt32((uint)c.VocabSize));
        if (c.Family.Layout.Norm == NormKind.Layer)
            w.Add($"{arch}.attention.layer_norm_epsilon", GgufValue.Float32((float)c.RmsNormEps));
        else
            w.Add($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.Float32((float)c.RmsNormEps));
        if (c.HeadDim * c.NumAttentionHeads != c.HiddenSize || c.HeadDimOverride is not null)
        {
            w.Add($"{arch}.attention.key_length", GgufValue.UInt32((uint)c.HeadDim));
            w.Add($"{arch}.attention.value_length", GgufValue.UInt32((uint)c.HeadDim));
        }
        if (c.Family.Layout.Positions == PositionKind.Rotary)
        {
            w.Add($"{arch}.rope.freq_base", GgufValue.Float32((float)c.RopeTheta));
            w.Add($"{arch}.rope.dimension_count", GgufValue.UInt32((uint)c.RotaryDim));
            if (c.RopeScaling?.Type == RopeScaling.Linear)
            {
                w.Add($"{arch}.rope.scaling.type", GgufValue.String("linear"));
                w.Add($"{arch}.rope.scaling.factor", GgufValue.Float32((float)c.RopeScaling.Factor));
            }
        }
        if (c.SlidingWindow is int window && !c.Family.Gguf.InterleavedRope)
            w.Add($"{arch}.attention.sliding_window", GgufValue.UInt32((uint)window));
    }
}
