using LoraShell.Core.IO;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Models.Families;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.SideTuning;

/// <summary>
/// Ladder side network (Sung et al., 2022, "LST") beside a frozen decoder of any family. The backbone
/// runs without autograd; its embeddings and chosen layers' hidden states h_i are down-projected
/// (d → d/k) and mixed into a thin causal side decoder through learned gates: the side state s becomes
/// μ_i·down_i(h_i) + (1 − μ_i)·s with μ_i = sigmoid(α_i / T), where α_i is the learned gate parameter
/// and T the gate temperature (<see cref="LadderConfig.GateTemperature"/>). Side blocks are the family's
/// own decoder blocks at width d/k. The side output is up-projected (d/k → d) and added to the
/// backbone's final hidden state before the frozen LM head. The up-projection starts at zero, so the
/// initial model equals the backbone exactly. Backpropagation stays inside the side network: no
/// backbone activation is kept for backward.
/// </summary>
public sealed class LadderSideNetwork : nn.Module, ISideNetwork
{
    nn.Module ISideNetwork.Module => this;

    public ModuleList<Linear> downs;
    public Parameter gates;
    public ModuleList<DecoderLayer> blocks;
    public nn.Module<Tensor, Tensor> norm;
    public Linear up;
    readonly IReadOnlyList<int> _layers;

    public LadderSideNetwork(LadderConfig config, ModelConfig backbone) : base(nameof(LadderSideNetwork))
    {
        config.Validate(backbone);
        Config = config.For(backbone);
        _layers = Config.SideLayers!;
        SideConfig = config.SideModel(backbone);
        int d = backbone.HiddenSize, ds = SideConfig.HiddenSize;
        downs = nn.ModuleList(Enumerable.Range(0, _layers.Count + 1).Select(_ => nn.Linear(d, ds, hasBias: false)).ToArray());
        gates = nn.Parameter(zeros(_layers.Count));
        blocks = nn.ModuleList(_layers.Select((_, j) => new DecoderLayer(SideConfig, j)).ToArray());
        norm = Norms.Create(SideConfig, ds);
        up = nn.Linear(ds, d, hasBias: false);
        using (no_grad()) up.weight!.zero_();
        RegisterComponents();
    }

    public LadderConfig Config { get; }
    public ModelConfig SideConfig { get; }
    public IReadOnlyList<int> Layers => _layers;

    /// <summary>μ_i for each side layer.</summary>
    public double[] GateValues()
    {
        using var _ = no_grad();
        return sigmoid(gates / Config.GateTemperature).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>Recompute side blocks in backward instead of keeping their activations (training only).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>Logits [batch, seq, vocab] of backbone + side network.</summary>
    public Tensor Forward(CausalLM backbone, Tensor ids, PackedLayout? packed = null) => backbone.Logits(Hidden(backbone, ids, packed: packed));

    /// <summary>
    /// Logits of the new positions for incremental decoding: the backbone appends to <paramref name="backboneCache"/>,
    /// the side blocks to <paramref name="sideCache"/> (one entry per side block, see <see cref="NewCache"/>).
    /// </summary>
    public Tensor Forward(CausalLM backbone, Tensor ids, KvCache backboneCache, KvCache sideCache)
        => backbone.Logits(Hidden(backbone, ids, backboneCache, sideCache));

    public KvCache NewCache() => new(_layers.Count);

    /// <summary>Final hidden states [batch, seq, hidden]: the backbone's plus the side network's up-projection.</summary>
    /// <param name="packed">rows of several documents: the side blocks attend within each document, as the backbone does</param>
    public Tensor Hidden(CausalLM backbone, Tensor ids, KvCache? backboneCache = null, KvCache? sideCache = null, PackedLayout? packed = null)
    {
        if ((backboneCache is null) != (sideCache is null))
            throw new ArgumentException("Give both caches (backbone and side) or neither.");
        var states = new Dictionary<int, Tensor>();
        var wanted = new HashSet<int>(_layers) { -1 };
        Tensor final;
        using (no_grad())
            final = backbone.Decoder.Forward(ids, backboneCache, (i, h) => { if (wanted.Contains(i)) states[i] = h; }, packed);

        var dtype = downs[0].weight!.dtype;
        long past = sideCache?.Length ?? 0;
        var rotary = packed is null ? backbone.Decoder.RotaryTable(past, ids.shape[1], ids.device, dtype) : backbone.Decoder.RotaryTable(packed, dtype);
        var side = downs[0].call(states[-1].to(dtype));
        for (int j = 0; j < _layers.Count; j++)
        {
            var mu = sigmoid(gates[j] / Config.GateTemperature);
            side = mu * downs[j + 1].call(states[_layers[j]].to(dtype)) + (1 - mu) * side;
            side = GradientCheckpointing && sideCache is null && is_grad_enabled()
                ? LayerRecompute.Run(blocks[j], side, rotary, packed?.Mask)
                : blocks[j].Forward(side, rotary, sideCache, past, packed?.Mask);
        }
        var combined = final.to(dtype) + up.call(norm.call(side));
        return combined.to(final.dtype);
    }

    // ---- initialisation from the backbone (structured pruning) ----

    /// <summary>
    /// Initialises each side block from its backbone layer by structured pruning: keep the d/k hidden
    /// dimensions, the heads/k heads and the intermediate/k MLP rows of highest importance (|w| summed,
    /// or a given per-weight importance such as Fisher (w·∂L/∂w)²), slice the backbone's weights (and
    /// biases and norms) to them, and make each down-projection select that layer's kept dimensions.
    /// Works on the layer's roles (q, k, v, o, gate, up, down), so fused and [in, out] layouts prune alike.
    /// </summary>
    public void InitFromBackbone(CausalLM backbone, Func<string, Tensor, Tensor>? importance = null)
    {
        importance ??= (_, w) => w.abs();
        var c = backbone.Config;
        int ds = SideConfig.HiddenSize, hd = c.HeadDim, sideHeads = SideConfig.NumAttentionHeads, di = SideConfig.IntermediateSize;
        int groups = c.NumAttentionHeads / c.NumKeyValueHeads;
        var names = backbone.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        string NameOf(Tensor p) => names.TryGetValue(p.Handle, out var n) ? n : "";
        using var _ = no_grad();
        for (int j = 0; j < _layers.Count; j++)
        {
            using var scope = NewDisposeScope();
            var source = backbone.Decoder.Layers[_layers[j]];
            var w = LayerRoles.Read(source, c, p => importance(NameOf(p), p));
            bool gated = w.Has(ProjectionRole.Gate);

            var dimScore = w.I(ProjectionRole.Query).sum(new long[] { 0 }) + w.I(ProjectionRole.Key).sum(new long[] { 0 }) + w.I(ProjectionRole.Value).sum(new long[] { 0 })
                + w.I(ProjectionRole.Output).sum(1) + w.I(ProjectionRole.Up).sum(new long[] { 0 }) + w.I(ProjectionRole.Down).sum(1)
                + (gated ? w.I(ProjectionRole.Gate).sum(new long[] { 0 }) : zeros(c.HiddenSize));
            var dims = dimScore.topk(ds).indexes.sort().Values;
            var headScore = w.I(ProjectionRole.Query).reshape(c.NumAttentionHeads, hd, -1).sum(new long[] { 1, 2 })
                + w.I(ProjectionRole.Output).reshape(-1, c.NumAttentionHeads, hd).sum(new long[] { 0, 2 });
            var heads = headScore.topk(sideHeads).indexes.sort().Values.data<long>().ToArray();
            var qRows = tensor(heads.SelectMany(h => Enumerable.Range((int)h * hd, hd).Select(i => (long)i)).ToArray());
            var kvRows = tensor(heads.SelectMany(h => Enumerable.Range((int)(h / groups) * hd, hd).Select(i => (long)i)).ToArray());
            var rowScore = w.I(ProjectionRole.Up).sum(1) + w.I(ProjectionRole.Down).sum(new long[] { 0 }) + (gated ? w.I(ProjectionRole.Gate).sum(1) : zeros(c.IntermediateSize));
            var rows = rowScore.topk(di).indexes.sort().Values;

            var pruned = new LayerRoles();
            pruned.Set(ProjectionRole.Query, w, qRows, dims);
            pruned.Set(ProjectionRole.Key, w, kvRows, dims);
            pruned.Set(ProjectionRole.Value, w, kvRows, dims);
            pruned.Set(ProjectionRole.Output, w, dims, qRows);
            if (gated) pruned.Set(ProjectionRole.Gate, w, rows, dims);
            pruned.Set(ProjectionRole.Up, w, rows, dims);
            pruned.Set(ProjectionRole.Down, w, dims, rows);
            pruned.Write(blocks[j]);
            CopySliced(source.InputNorm, blocks[j].InputNorm, dims);
            CopySliced(source.PostAttentionNorm, blocks[j].PostAttentionNorm, dims);
            if (source.Attention.QueryNorm is { } qn) blocks[j].Attention.QueryNorm!.weight.copy_(qn.weight);
            if (source.Attention.KeyNorm is { } kn) blocks[j].Attention.KeyNorm!.weight.copy_(kn.weight);

            var select = zeros(ds, c.HiddenSize);
            select.index_put_(ones(ds), arange(ds), dims);
            downs[j + 1].weight!.copy_(select);
            if (j == 0) downs[0].weight!.copy_(select);
        }
        foreach (var (name, p) in norm.named_parameters()) p.copy_(name == "weight" ? ones_like(p) : zeros_like(p));
    }

    /// <summary>Copies a norm's weight (and bias) at the kept dimensions.</summary>
    static void CopySliced(nn.Module<Tensor, Tensor> from, nn.Module<Tensor, Tensor> to, Tensor dims)
    {
        var source = from.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in to.named_parameters()) p.copy_(source[name].to(ScalarType.Float32).index_select(0, dims).to(p.dtype));
    }

    // ---- files: side_network.safetensors + side_network.json ----

    public const string WeightsFile = "side_network.safetensors";
    public const string ConfigFile = "side_network.json";

    public void Save(string folder, bool overwrite)
        => AtomicFile.WriteDirectory(folder, overwrite, temp => WriteInto(temp));

    public void WriteInto(string folder)
    {
        File.WriteAllText(Path.Combine(folder, ConfigFile), Config.ToJson());
        SafetensorsWriter.Write(Path.Combine(folder, WeightsFile), state_dict().OrderBy(p => p.Key, StringComparer.Ordinal), SafetensorsHeader.PyTorchMetadata);
    }

    /// <summary>Loads a saved side network for <paramref name="backbone"/>, refusing one built for another backbone.</summary>
    public static LadderSideNetwork Load(string folder, CausalLM backbone)
    {
        string full = Path.GetFullPath(folder);
        string configPath = Path.Combine(full, ConfigFile);
        if (!File.Exists(configPath))
            throw LoraShellException.NotFound("SideNetworkNotFound", $"'{full}' has no {ConfigFile}; a side-network folder holds {ConfigFile} and {WeightsFile}.", full);
        var config = LadderConfig.FromJson(File.ReadAllText(configPath), configPath);
        var c = backbone.Config;
        if (config.Architecture is not null)
            throw LoraShellException.InvalidData("SideNetworkForAnotherBackbone",
                $"Side network '{full}' was built for a {config.Architecture} encoder-decoder; this model is a decoder-only {c.ModelType}.", full);
        if (config.BackboneHiddenSize != c.HiddenSize || config.BackboneLayers != c.NumHiddenLayers || config.BackboneHeads != c.NumAttentionHeads || config.BackboneVocabSize != c.VocabSize)
            throw LoraShellException.InvalidData("SideNetworkForAnotherBackbone",
                $"Side network '{full}' was built for a backbone with hidden size {config.BackboneHiddenSize}, {config.BackboneLayers} layers, {config.BackboneHeads} heads and vocabulary {config.BackboneVocabSize}; this model has {c.HiddenSize}, {c.NumHiddenLayers}, {c.NumAttentionHeads} and {c.VocabSize}.", full);
        var side = new LadderSideNetwork(config, c);
        try
        {
            using var file = SafetensorsFile.Open(Path.Combine(full, WeightsFile));
            var shapes = file.Names.ToDictionary(n => n, n => file[n].Shape);
            StateDictLoader.Load(side, full, shapes, file.ReadTensor);
            side.to(backbone.Device);
            return side;
        }
        catch { side.Dispose(); throw; }
    }
}
