using System.Text.Json;
using System.Text.Json.Serialization;
using LoraShell.Core.Models;

namespace LoraShell.Core.SideTuning;

/// <summary>How the side network starts: pruned from the backbone (by weight magnitude or Fisher information) or random.</summary>
public enum LadderInit { Magnitude, Fisher, Random }

/// <summary>Shape of a ladder side network (Sung et al., 2022) for a Llama backbone.</summary>
public sealed record LadderConfig
{
    /// <summary>Side width = backbone width / ReductionFactor (the paper's k; default 8).</summary>
    public int ReductionFactor { get; init; } = 8;
    /// <summary>Backbone layers that feed the side network (layer dropping); null: all.</summary>
    public IReadOnlyList<int>? SideLayers { get; init; }
    public LadderInit Init { get; init; } = LadderInit.Magnitude;
    /// <summary>Gate temperature T in μ = sigmoid(α / T).</summary>
    public double GateTemperature { get; init; } = 0.1;

    /// <summary>T5 only: the decoder's fed layers (null: <see cref="SideLayers"/>, or all of them).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? SideDecoderLayers { get; init; }

    // Filled in for the backbone it was built for, and checked on load. A decoder-only side network
    // writes neither field below, so its files and checkpoint fingerprints are as before T5.
    /// <summary>"t5" for an encoder-decoder's side network; null for a decoder-only one.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Architecture { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int BackboneDecoderLayers { get; init; }
    public int BackboneHiddenSize { get; init; }
    public int BackboneLayers { get; init; }
    public int BackboneHeads { get; init; }
    public int BackboneVocabSize { get; init; }

    public int SideWidth(ModelConfig c) => c.HiddenSize / ReductionFactor;
    public int SideHeads(ModelConfig c) => c.NumAttentionHeads / ReductionFactor;
    public int SideIntermediate(ModelConfig c) => Math.Max(1, c.IntermediateSize / ReductionFactor);
    public IReadOnlyList<int> Layers(ModelConfig c) => SideLayers ?? Enumerable.Range(0, c.NumHiddenLayers).ToList();

    /// <summary>
    /// The side blocks' own shape: the backbone family's blocks at width d/k, heads/k (whole heads, the
    /// backbone's head size, no grouping), one block per fed layer. Biases only where the family always has them.
    /// </summary>
    public ModelConfig SideModel(ModelConfig c) => c with
    {
        HiddenSize = SideWidth(c), IntermediateSize = SideIntermediate(c),
        NumAttentionHeads = SideHeads(c), NumKeyValueHeads = SideHeads(c),
        NumHiddenLayers = Layers(c).Count, HeadDimOverride = c.HeadDim, AttentionBias = false, MlpBias = false, Source = null,
    };

    /// <summary>Trainable parameters of the side network: down-projections, gates, side blocks, final norm and up-projection.</summary>
    public long TrainableParameters(ModelConfig c)
    {
        var side = SideModel(c);
        string layers = side.Family.Layout.LayerPrefix(0)[..^2]; // "model.layers." without the index
        long Count(IEnumerable<Models.Families.TensorSpec> t) => t.Sum(x => x.Shape.Aggregate(1L, (a, b) => a * b));
        var all = side.Family.Tensors(side).ToList();
        long blocks = Count(all.Where(t => t.Name.StartsWith(layers, StringComparison.Ordinal)));
        long finalNorm = Count(all.Where(t => t.Name.StartsWith($"{side.Family.Layout.Backbone}.{side.Family.Layout.FinalNorm}.", StringComparison.Ordinal)));
        int fed = Layers(c).Count;
        return (fed + 1L) * c.HiddenSize * side.HiddenSize + fed + blocks + finalNorm + (long)side.HiddenSize * c.HiddenSize;
    }

    /// <summary>Checks the factor against the backbone; throws with what is wrong and what would work.</summary>
    public void Validate(ModelConfig c)
    {
        if (ReductionFactor < 1) throw LoraShellException.InvalidArgument("InvalidReductionFactor", $"Reduction factor must be at least 1 (got {ReductionFactor}).", ReductionFactor);
        var divisors = Enumerable.Range(1, c.NumAttentionHeads).Where(k => c.HiddenSize % k == 0 && c.NumAttentionHeads % k == 0).ToList();
        if (c.HiddenSize % ReductionFactor != 0 || c.NumAttentionHeads % ReductionFactor != 0)
            throw LoraShellException.InvalidArgument("InvalidReductionFactor",
                $"Reduction factor {ReductionFactor} must divide the width ({c.HiddenSize}) and the head count ({c.NumAttentionHeads}) so the side network keeps whole heads; valid factors: {string.Join(", ", divisors)}.", ReductionFactor);
        var layers = Layers(c);
        if (layers.Count == 0) throw LoraShellException.InvalidArgument("InvalidSideLayers", "Side layers must name at least one backbone layer.", SideLayers);
        var bad = layers.Where(i => i < 0 || i >= c.NumHiddenLayers).ToList();
        if (bad.Count > 0)
            throw LoraShellException.InvalidArgument("InvalidSideLayers", $"Side layer(s) {string.Join(", ", bad)} are out of range; the backbone has layers 0..{c.NumHiddenLayers - 1}.", SideLayers);
        if (layers.Distinct().Count() != layers.Count || !layers.SequenceEqual(layers.OrderBy(i => i)))
            throw LoraShellException.InvalidArgument("InvalidSideLayers", "Side layers must be distinct and in increasing order.", SideLayers);
        if (!(GateTemperature > 0)) throw LoraShellException.InvalidArgument("InvalidTemperature", $"Gate temperature must be positive (got {GateTemperature}).", GateTemperature);
    }

    public LadderConfig For(ModelConfig c) => this with
    {
        BackboneHiddenSize = c.HiddenSize, BackboneLayers = c.NumHiddenLayers, BackboneHeads = c.NumAttentionHeads, BackboneVocabSize = c.VocabSize,
        SideLayers = Layers(c).ToList(),
    };

    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true });

    public static LadderConfig FromJson(string json, string source)
    {
        try { return JsonSerializer.Deserialize<LadderConfig>(json) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw LoraShellException.InvalidData("InvalidSideNetwork", $"'{source}' is not a LoraShell side-network config ({e.Message}).", source); }
    }
}
