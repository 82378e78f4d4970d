using LoraShell.Core.IO;
using LoraShell.Core.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.SideTuning;

/// <summary>
/// Ladder side network (Sung et al., 2022, "LST") beside a frozen Llama decoder. The backbone runs
/// without autograd; its embeddings and chosen layers' hidden states are down-projected (d → d/k) and
/// mixed into a thin causal side decoder through learned gates μ_i = sigmoid(α_i / T). The side
/// output is up-projected (d/k → d) and added to the backbone's final hidden state before the frozen
/// LM head. The up-projection starts at zero, so the initial model equals the backbone exactly.
/// Backpropagation stays inside the side network: no backbone activation is kept for backward.
/// </summary>
public sealed class LadderSideNetwork : nn.Module
{
    public ModuleList<Linear> downs;
    public Parameter gates;
    public ModuleList<LlamaDecoderLayer> blocks;
    public RmsNorm norm;
    public Linear up;
    readonly IReadOnlyList<int> _layers;

    public LadderSideNetwork(LadderConfig config, LlamaConfig backbone) : base(nameof(LadderSideNetwork))
    {
        config.Validate(backbone);
        Config = config.For(backbone);
        _layers = Config.SideLayers!;
        SideConfig = config.SideModel(backbone);
        int d = backbone.HiddenSize, ds = SideConfig.HiddenSize;
        downs = nn.ModuleList(Enumerable.Range(0, _layers.Count + 1).Select(_ => nn.Linear(d, ds, hasBias: false)).ToArray());
        gates = nn.Parameter(zeros(_layers.Count));
        blocks = nn.ModuleList(_layers.Select(_ => new LlamaDecoderLayer(SideConfig)).ToArray());
        norm = new RmsNorm(ds, backbone.RmsNormEps);
        up = nn.Linear(ds, d, hasBias: false);
        using (no_grad()) up.weight!.zero_();
        RegisterComponents();
    }

    public LadderConfig Config { get; }
    public LlamaConfig SideConfig { get; }
    public IReadOnlyList<int> Layers => _layers;

    /// <summary>μ_i for each side layer.</summary>
    public double[] GateValues()
    {
        using var _ = no_grad();
        return sigmoid(gates / Config.GateTemperature).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>Logits [batch, seq, vocab] of backbone + side network.</summary>
    public Tensor Forward(LlamaForCausalLM backbone, Tensor ids) => backbone.Logits(Hidden(backbone, ids));

    /// <summary>
    /// Logits of the new positions for incremental decoding: the backbone appends to <paramref name="backboneCache"/>,
    /// the side blocks to <paramref name="sideCache"/> (one entry per side block, see <see cref="NewCache"/>).
    /// </summary>
    public Tensor Forward(LlamaForCausalLM backbone, Tensor ids, KvCache backboneCache, KvCache sideCache)
        => backbone.Logits(Hidden(backbone, ids, backboneCache, sideCache));

    public KvCache NewCache() => new(_layers.Count);

    /// <summary>Final hidden states [batch, seq, hidden]: the backbone's plus the side network's up-projection.</summary>
    public Tensor Hidden(LlamaForCausalLM backbone, Tensor ids, KvCache? backboneCache = null, KvCache? sideCache = null)
    {
        if ((backboneCache is null) != (sideCache is null))
            throw new ArgumentException("Give both caches (backbone and side) or neither.");
        var states = new Dictionary<int, Tensor>();
        var wanted = new HashSet<int>(_layers) { -1 };
        Tensor final;
        using (no_grad())
            final = backbone.model.Forward(ids, backboneCache, (i, h) => { if (wanted.Contains(i)) states[i] = h; });

        var dtype = downs[0].weight!.dtype;
        long past = sideCache?.Length ?? 0;
        var (cos, sin) = backbone.model.RotaryTable(past, ids.shape[1], ids.device, dtype);
        var side = downs[0].call(states[-1].to(dtype));
        for (int j = 0; j < _layers.Count; j++)
        {
            var mu = sigmoid(gates[j] / Config.GateTemperature);
            side = mu * downs[j + 1].call(states[_layers[j]].to(dtype)) + (1 - mu) * side;
            side = blocks[j].Forward(side, cos, sin, sideCache, j, past);
        }
        var combined = final.to(dtype) + up.call(norm.call(side));
        return combined.to(final.dtype);
    }

    // ---- initialisation from the backbone (structured pruning) ----

    /// <summary>
    /// Initialises each side block from its backbone layer by structured pruning: keep the d/k hidden
    /// dimensions, the heads/k heads and the intermediate/k MLP rows of highest importance (|w| summed,
    /// or a given per-weight importance such as Fisher (w·∂L/∂w)²), slice the backbone's weights to them,
    /// and make each down-projection select that layer's kept dimensions.
    /// </summary>
    public void InitFromBackbone(LlamaForCausalLM backbone, Func<string, Tensor, Tensor>? importance = null)
    {
        importance ??= (_, w) => w.abs();
        var c = backbone.Config;
        int ds = SideConfig.HiddenSize, hd = c.HeadDim, sideHeads = SideConfig.NumAttentionHeads, di = SideConfig.IntermediateSize;
        int groups = c.NumAttentionHeads / c.NumKeyValueHeads;
        var weights = backbone.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        using var _ = no_grad();
        for (int j = 0; j < _layers.Count; j++)
        {
            using var scope = NewDisposeScope();
            string p = $"model.layers.{_layers[j]}.";
            Tensor W(string name) => weights[p + name].to(ScalarType.Float32);
            Tensor I(string name) => importance(p + name, weights[p + name]).to(ScalarType.Float32);
            var wq = W("self_attn.q_proj.weight"); var wk = W("self_attn.k_proj.weight"); var wv = W("self_attn.v_proj.weight"); var wo = W("self_attn.o_proj.weight");
            var wg = W("mlp.gate_proj.weight"); var wu = W("mlp.up_proj.weight"); var wd = W("mlp.down_proj.weight");

            var dimScore = I("self_attn.q_proj.weight").sum(0) + I("self_attn.k_proj.weight").sum(0) + I("self_attn.v_proj.weight").sum(0)
                + I("self_attn.o_proj.weight").sum(1) + I("mlp.gate_proj.weight").sum(0) + I("mlp.up_proj.weight").sum(0) + I("mlp.down_proj.weight").sum(1);
            var dims = dimScore.topk(ds).indexes.sort().Values;
            var headScore = I("self_attn.q_proj.weight").reshape(c.NumAttentionHeads, hd, -1).sum(new long[] { 1, 2 })
                + I("self_attn.o_proj.weight").reshape(-1, c.NumAttentionHeads, hd).sum(new long[] { 0, 2 });
            var heads = headScore.topk(sideHeads).indexes.sort().Values.data<long>().ToArray();
            var qRows = tensor(heads.SelectMany(h => Enumerable.Range((int)h * hd, hd).Select(i => (long)i)).ToArray());
            var kvRows = tensor(heads.SelectMany(h => Enumerable.Range((int)(h / groups) * hd, hd).Select(i => (long)i)).ToArray());
            var rowScore = I("mlp.gate_proj.weight").sum(1) + I("mlp.up_proj.weight").sum(1) + I("mlp.down_proj.weight").sum(0);
            var rows = rowScore.topk(di).indexes.sort().Values;

            var block = blocks[j];
            Copy(block.self_attn.q_proj, wq.index_select(0, qRows).index_select(1, dims));
            Copy(block.self_attn.k_proj, wk.index_select(0, kvRows).index_select(1, dims));
            Copy(block.self_attn.v_proj, wv.index_select(0, kvRows).index_select(1, dims));
            Copy(block.self_attn.o_proj, wo.index_select(0, dims).index_select(1, qRows));
            Copy(block.mlp.gate_proj, wg.index_select(0, rows).index_select(1, dims));
            Copy(block.mlp.up_proj, wu.index_select(0, rows).index_select(1, dims));
            Copy(block.mlp.down_proj, wd.index_select(0, dims).index_select(1, rows));
            block.input_layernorm.weight.copy_(W("input_layernorm.weight").index_select(0, dims));
            block.post_attention_layernorm.weight.copy_(W("post_attention_layernorm.weight").index_select(0, dims));
            var select = zeros(ds, c.HiddenSize);
            select.index_put_(ones(ds), arange(ds), dims);
            downs[j + 1].weight!.copy_(select);
            if (j == 0) downs[0].weight!.copy_(select);
        }
        norm.weight.copy_(ones(ds));
    }

    static void Copy(nn.Module<Tensor, Tensor> target, Tensor value) => ((Linear)target).weight!.copy_(value);

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
    public static LadderSideNetwork Load(string folder, LlamaForCausalLM backbone)
    {
        string full = Path.GetFullPath(folder);
        string configPath = Path.Combine(full, ConfigFile);
        if (!File.Exists(configPath))
            throw LoraShellException.NotFound("SideNetworkNotFound", $"'{full}' has no {ConfigFile}; a side-network folder holds {ConfigFile} and {WeightsFile}.", full);
        var config = LadderConfig.FromJson(File.ReadAllText(configPath), configPath);
        var c = backbone.Config;
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
