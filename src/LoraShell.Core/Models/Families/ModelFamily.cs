using System.Text.Json.Nodes;

namespace LoraShell.Core.Models.Families;

/// <summary>One tensor a family's checkpoint holds: HF name and shape.</summary>
public readonly record struct TensorSpec(string Name, long[] Shape);

/// <summary>
/// One model family in one place: its HF names and shared building blocks (<see cref="Layout"/>),
/// which config.json keys it reads and their defaults, and the tensor names and shapes its
/// checkpoints hold. A new family (Gemma, OLMo, …) is a small subclass, not a fork of the decoder.
/// </summary>
public abstract class ModelFamily
{
    /// <summary>What a config.json without tie_word_embeddings means for this family (transformers' config class default).</summary>
    public virtual bool TiesEmbeddingsByDefault => false;

    /// <summary>HF's <c>model_type</c>.</summary>
    public abstract string ModelType { get; }

    /// <summary>The transformers class a saved config names (<c>architectures</c>).</summary>
    public abstract string Architecture { get; }

    public abstract FamilyLayout Layout { get; }

    /// <summary>The family as llama.cpp knows it (architecture name, rope pairing); tensor names come from <see cref="GgufNames"/>.</summary>
    public virtual GgufArchitecture Gguf => new(ModelType, InterleavedRope: false);

    /// <summary>
    /// What a config uses that llama.cpp's architecture cannot express: (what, fatal). Fatal ones are
    /// refused on export (the GGUF would compute something else); the others are warned about.
    /// </summary>
    public virtual IEnumerable<(string Problem, bool Fatal)> GgufLimitations(ModelConfig c)
    {
        if (c.RopeScaling?.Type == RopeScaling.Dynamic)
            yield return ("rope_scaling 'dynamic' (NTK scaling by sequence length), which llama.cpp does not implement", true);
    }

    /// <summary>The numbers of a config.json of this family, with the family's defaults.</summary>
    public abstract ModelConfig ReadConfig(ConfigReader json);

    /// <summary>Reads and validates a config.json object of this family.</summary>
    public ModelConfig ReadAndValidate(JsonObject json, string source)
    {
        var config = ReadConfig(new ConfigReader(json, source));
        config.Validate(source);
        return config;
    }

    /// <summary>A config.json for a model that was not read from one (a converted llama2.c checkpoint).</summary>
    public virtual JsonObject WriteConfig(ModelConfig c) => throw new NotSupportedException($"{ModelType} models are always read from a config.json.");

    /// <summary>
    /// The name a checkpoint tensor has in this layout, or null to ignore it (buffers such as GPT-2's
    /// causal mask, a tied head's copy). Families whose checkpoints come in several spellings map them here.
    /// </summary>
    public virtual string? CanonicalName(string name, ModelConfig c)
        => c.TieWordEmbeddings && name == $"{FamilyLayout.Head}.weight" ? null : name;

    /// <summary>Every tensor of a checkpoint of this family, in module order, with its shape.</summary>
    public IEnumerable<TensorSpec> Tensors(ModelConfig c)
    {
        var l = Layout;
        long e = c.HiddenSize;
        string b = l.Backbone;
        yield return new($"{b}.{l.Embedding}.weight", new long[] { c.VocabSize, e });
        if (l.PositionEmbedding is string wpe) yield return new($"{b}.{wpe}.weight", new long[] { c.MaxPositionEmbeddings, e });
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string p = l.LayerPrefix(i);
            foreach (var t in Norm(p + l.InputNorm, e)) yield return t;
            foreach (var proj in l.AttentionProjections) foreach (var t in Projection($"{p}{l.Attention}.{proj.Name}", proj.Role, c)) yield return t;
            if (l.QueryKeyNorm)
            {
                yield return new($"{p}{l.Attention}.{FamilyLayout.QueryNorm}.weight", new long[] { c.HeadDim });
                yield return new($"{p}{l.Attention}.{FamilyLayout.KeyNorm}.weight", new long[] { c.HeadDim });
            }
            foreach (var t in Norm(p + l.PostAttentionNorm, e)) yield return t;
            foreach (var proj in l.FeedForwardProjections) foreach (var t in Projection($"{p}{l.FeedForward}.{proj.Name}", proj.Role, c)) yield return t;
        }
        foreach (var t in Norm($"{b}.{l.FinalNorm}", e)) yield return t;
        if (!c.TieWordEmbeddings) yield return new($"{FamilyLayout.Head}.weight", new long[] { c.VocabSize, e });
    }

    IEnumerable<TensorSpec> Norm(string path, long size)
    {
        yield return new($"{path}.weight", new[] { size });
        if (Layout.Norm == NormKind.Layer) yield return new($"{path}.bias", new[] { size });
    }

    IEnumerable<TensorSpec> Projection(string path, ProjectionRole role, ModelConfig c)
    {
        var (inF, outF) = Shape(role, c);
        yield return new($"{path}.weight", Layout.Storage == ProjectionStorage.Conv1D ? new[] { inF, outF } : new[] { outF, inF });
        if (Layout.Storage == ProjectionStorage.Conv1D || c.HasBias(role)) yield return new($"{path}.bias", new[] { outF });
    }

    /// <summary>(in, out) features of a projection with this role.</summary>
    public static (long In, long Out) Shape(ProjectionRole role, ModelConfig c)
    {
        long e = c.HiddenSize, q = c.QueryDim, kv = c.KeyValueDim, i = c.IntermediateSize;
        return role switch
        {
            ProjectionRole.Query => (e, q),
            ProjectionRole.Key or ProjectionRole.Value => (e, kv),
            ProjectionRole.QueryKeyValue => (e, q + 2 * kv),
            ProjectionRole.Output => (q, e),
            ProjectionRole.Gate or ProjectionRole.Up => (e, i),
            ProjectionRole.GateUp => (e, 2 * i),
            _ => (i, e),
        };
    }

    /// <summary>The config.json keys every family's files carry in common, for <see cref="WriteConfig"/>.</summary>
    protected JsonObject CommonConfig(ModelConfig c) => new()
    {
        ["architectures"] = new JsonArray(Architecture),
        ["model_type"] = ModelType,
        ["bos_token_id"] = c.BosTokenId,
        ["eos_token_id"] = c.EosTokenId,
        ["vocab_size"] = c.VocabSize,
        ["tie_word_embeddings"] = c.TieWordEmbeddings,
        ["torch_dtype"] = c.TorchDType,
    };
}
