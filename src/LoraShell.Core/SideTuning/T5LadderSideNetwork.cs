using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Models;
using LoraShell.Core.Models.T5;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.SideTuning;

/// <summary>
/// Ladder side-tuning on T5 as the LST paper's code builds it (Sung et al. 2022): a side encoder beside the
/// frozen encoder and a side decoder beside the frozen decoder, each made of T5 blocks at width d/k (d_kv/k and
/// d_ff/k, the backbone's number of heads, as the paper's code shrinks T5), each fed through gated ladders: before side block j the side state s becomes
/// μ_j·down_j(h_j) + (1 − μ_j)·s, with h_j the backbone stack's output of its j-th fed layer and
/// μ_j = sigmoid(α_j / T). The side decoder's blocks have their own cross-attention, to the side encoder's
/// output. The side decoder's output is up-projected (d/k → d) and added to the backbone decoder's final
/// state before the frozen head; the up-projection starts at zero, so the untrained network is the backbone.
/// The backbone runs without autograd: backward never enters it.
/// </summary>
public sealed class T5LadderSideNetwork : nn.Module, ISideNetwork
{
    nn.Module ISideNetwork.Module => this;

    public ModuleList<Linear> encoder_downs, decoder_downs;
    public Parameter encoder_gates, decoder_gates;
    public T5Stack side_encoder, side_decoder;
    public Linear up;

    public T5LadderSideNetwork(LadderConfig config, T5Config backbone) : base(nameof(T5LadderSideNetwork))
    {
        Validate(config, backbone);
        Config = config with
        {
            BackboneHiddenSize = backbone.DModel, BackboneLayers = backbone.NumLayers, BackboneHeads = backbone.NumHeads, BackboneVocabSize = backbone.VocabSize,
            BackboneDecoderLayers = backbone.NumDecoderLayers,
            SideLayers = config.SideLayers ?? Enumerable.Range(0, backbone.NumLayers).ToList(),
            SideDecoderLayers = config.SideDecoderLayers ?? config.SideLayers ?? Enumerable.Range(0, backbone.NumDecoderLayers).ToList(),
        };
        EncoderLayers = Config.SideLayers!;
        DecoderLayers = Config.SideDecoderLayers!;
        int k = config.ReductionFactor;
        SideConfig = backbone with
        {
            DModel = backbone.DModel / k, DKv = backbone.DKv / k, DFf = Math.Max(1, backbone.DFf / k),
            NumLayers = EncoderLayers.Count, NumDecoderLayers = DecoderLayers.Count,
        };
        int d = backbone.DModel, ds = SideConfig.DModel;
        encoder_downs = nn.ModuleList(Enumerable.Range(0, EncoderLayers.Count + 1).Select(_ => nn.Linear(d, ds, hasBias: false)).ToArray());
        decoder_downs = nn.ModuleList(Enumerable.Range(0, DecoderLayers.Count + 1).Select(_ => nn.Linear(d, ds, hasBias: false)).ToArray());
        encoder_gates = nn.Parameter(zeros(EncoderLayers.Count));
        decoder_gates = nn.Parameter(zeros(DecoderLayers.Count));
        side_encoder = new T5Stack(SideConfig, decoder: false);
        side_decoder = new T5Stack(SideConfig, decoder: true);
        up = nn.Linear(ds, d, hasBias: false);
        using (no_grad()) up.weight!.zero_();
        RegisterComponents();
    }

    public LadderConfig Config { get; }
    /// <summary>The side stacks' shape: the backbone's at width d/k.</summary>
    public T5Config SideConfig { get; }
    public IReadOnlyList<int> EncoderLayers { get; }
    public IReadOnlyList<int> DecoderLayers { get; }

    /// <summary>Checks the factor and the fed layers against the backbone; throws with what is wrong and what would work.</summary>
    public static void Validate(LadderConfig config, T5Config c)
    {
        int k = config.ReductionFactor;
        if (k < 1 || c.DModel % k != 0 || c.DKv % k != 0)
        {
            var valid = Enumerable.Range(1, c.DKv).Where(f => c.DModel % f == 0 && c.DKv % f == 0);
            throw LoraShellException.InvalidArgument("InvalidReductionFactor",
                $"Reduction factor {k} must divide d_model ({c.DModel}) and d_kv ({c.DKv}): the side stacks keep every head at d_kv/k; valid factors: {string.Join(", ", valid)}.", k);
        }
        void Check(IReadOnlyList<int>? layers, int count, string stack)
        {
            if (layers is null) return;
            if (layers.Count == 0) throw LoraShellException.InvalidArgument("InvalidSideLayers", $"Side layers of the {stack} must name at least one layer.", layers);
            var bad = layers.Where(i => i < 0 || i >= count).ToList();
            if (bad.Count > 0)
                throw LoraShellException.InvalidArgument("InvalidSideLayers", $"Side layer(s) {string.Join(", ", bad)} are out of range; the {stack} has layers 0..{count - 1}.", layers);
            if (layers.Distinct().Count() != layers.Count || !layers.SequenceEqual(layers.OrderBy(i => i)))
                throw LoraShellException.InvalidArgument("InvalidSideLayers", "Side layers must be distinct and in increasing order.", layers);
        }
        Check(config.SideLayers, c.NumLayers, "encoder");
        Check(config.SideDecoderLayers ?? config.SideLayers, c.NumDecoderLayers, "decoder");
        if (!(config.GateTemperature > 0)) throw LoraShellException.InvalidArgument("InvalidTemperature", $"Gate temperature must be positive (got {config.GateTemperature}).", config.GateTemperature);
    }

    /// <summary>μ of every ladder, the encoder's then the decoder's.</summary>
    public double[] GateValues()
    {
        using var _ = no_grad();
        return sigmoid(cat(new[] { encoder_gates, decoder_gates }) / Config.GateTemperature).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>The backbone's encoding of the source and the side encoder's beside it.</summary>
    public T5Encoding Encode(T5ForConditionalGeneration backbone, Tensor inputIds, Tensor? mask)
    {
        var states = new Dictionary<int, Tensor>();
        Tensor encoded;
        using (no_grad())
            encoded = backbone.Encode(inputIds, mask, Collect(states, EncoderLayers));
        var dtype = up.weight!.dtype;
        var side = encoder_downs[0].call(states[-1].to(dtype));
        var bias = side_encoder.SelfBias(inputIds.shape[1], 0, mask, dtype, side.device);
        for (int j = 0; j < EncoderLayers.Count; j++)
        {
            side = Ladder(side, encoder_downs[j + 1], encoder_gates[j], states[EncoderLayers[j]]);
            side = side_encoder.block[j].Forward(side, bias);
        }
        return new T5Encoding(encoded, side_encoder.final_layer_norm.forward(side), mask);
    }

    /// <summary>
    /// The decoder's final hidden states: the backbone's plus the up-projected side decoder's. With caches (both
    /// or neither), <paramref name="decoderIds"/> continue the tokens they have seen.
    /// </summary>
    public Tensor DecoderHidden(T5ForConditionalGeneration backbone, Tensor decoderIds, T5Encoding encoding, T5DecoderCache? backboneCache = null, T5DecoderCache? sideCache = null)
    {
        if ((backboneCache is null) != (sideCache is null)) throw new ArgumentException("Give both caches (backbone and side) or neither.");
        if (encoding.Side is null) throw new ArgumentException("The encoding was made without this side network's encoder.", nameof(encoding));
        var states = new Dictionary<int, Tensor>();
        long past = sideCache?.Length ?? 0;
        Tensor final;
        using (no_grad())
            final = backbone.DecoderHidden(decoderIds, encoding.Backbone, encoding.Mask, backboneCache, Collect(states, DecoderLayers));
        var dtype = up.weight!.dtype;
        var side = decoder_downs[0].call(states[-1].to(dtype));
        var selfBias = side_decoder.SelfBias(decoderIds.shape[1], past, null, dtype, side.device);
        var crossBias = T5Stack.CrossBias(encoding.Mask, dtype, side.device);
        for (int j = 0; j < DecoderLayers.Count; j++)
        {
            side = Ladder(side, decoder_downs[j + 1], decoder_gates[j], states[DecoderLayers[j]]);
            side = side_decoder.block[j].Forward(side, selfBias, encoding.Side, crossBias, sideCache, j);
        }
        sideCache?.Advance(decoderIds.shape[1]);
        return (final.to(dtype) + up.call(side_decoder.final_layer_norm.forward(side))).to(final.dtype);
    }

    Tensor Ladder(Tensor side, Linear down, Tensor gate, Tensor backboneState)
    {
        var mu = sigmoid(gate / Config.GateTemperature);
        return mu * down.call(backboneState.to(side.dtype)) + (1 - mu) * side;
    }

    /// <summary>Keeps the embeddings (-1) and the fed layers' outputs, taken out of the backbone pass's dispose scope.</summary>
    static Action<int, Tensor> Collect(Dictionary<int, Tensor> states, IReadOnlyList<int> layers)
    {
        var wanted = new HashSet<int>(layers) { -1 };
        return (i, h) => { if (wanted.Contains(i)) states[i] = h.alias().MoveToOuterDisposeScope(); };
    }

    /// <summary>
    /// Structured pruning from the backbone (the paper's initialisation): each side block keeps the d/k model
    /// dimensions, d_kv/k dimensions of every head (self- and cross-attention each) and d_ff/k feed-forward rows of highest
    /// importance in its fed backbone block, and its ladder selects the same dimensions of that block's output.
    /// The side decoder's cross-attention reads the side encoder's output, so its keys and values keep the
    /// dimensions the last side encoder block kept.
    /// </summary>
    public void InitFromBackbone(T5ForConditionalGeneration backbone, Func<string, Tensor, Tensor>? importance = null)
    {
        importance ??= (_, w) => w.abs();
        var weights = backbone.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        using var _ = no_grad();
        var encoderDims = Prune("encoder", side_encoder, encoder_downs, EncoderLayers, null);
        Prune("decoder", side_decoder, decoder_downs, DecoderLayers, encoderDims);
        encoderDims.Dispose();

        Tensor Prune(string stack, T5Stack sideStack, ModuleList<Linear> downs, IReadOnlyList<int> layers, Tensor? crossSourceDims)
        {
            var c = backbone.Config;
            Tensor? lastDims = null;
            for (int j = 0; j < layers.Count; j++)
            {
                using var scope = NewDisposeScope();
                string prefix = $"{stack}.block.{layers[j]}.layer";
                bool decoder = crossSourceDims is not null;
                string ff = $"{prefix}.{(decoder ? 2 : 1)}.DenseReluDense";
                Tensor W(string path) => weights.TryGetValue(path + ".weight", out var w) ? w : weights[path + ".base_layer.weight"];
                Tensor I(string path) => importance(weights.ContainsKey(path + ".weight") ? path + ".weight" : path + ".base_layer.weight", W(path)).to(ScalarType.Float32);
                string self = $"{prefix}.0.SelfAttention", cross = $"{prefix}.1.EncDecAttention";
                var inputs = c.GatedFeedForward ? new[] { $"{self}.q", $"{self}.k", $"{self}.v", $"{ff}.wi_0", $"{ff}.wi_1" } : new[] { $"{self}.q", $"{self}.k", $"{self}.v", $"{ff}.wi" };
                var outputs = new List<string> { $"{self}.o", $"{ff}.wo" };
                if (decoder) { inputs = inputs.Append($"{cross}.q").ToArray(); outputs.Add($"{cross}.o"); }
                var dimScore = inputs.Select(n => I(n).sum(new long[] { 0 })).Concat(outputs.Select(n => I(n).sum(1))).Aggregate((a, b) => a + b);
                var dims = dimScore.topk(SideConfig.DModel).indexes.sort().Values;
                var rows = HeadRows(I($"{self}.q") + I($"{self}.k") + I($"{self}.v"), I($"{self}.o"), c);
                var ffScore = (c.GatedFeedForward ? I($"{ff}.wi_0").sum(1) + I($"{ff}.wi_1").sum(1) : I($"{ff}.wi").sum(1)) + I($"{ff}.wo").sum(new long[] { 0 });
                var ffRows = ffScore.topk(SideConfig.DFf).indexes.sort().Values;

                var target = sideStack.block[j];
                string sideFf = $"layer.{(decoder ? 2 : 1)}.DenseReluDense";
                var side = target.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
                void Put(string name, Tensor source, Tensor rowIndex, Tensor columnIndex)
                    => side[name + ".weight"].copy_(source.index_select(0, rowIndex).index_select(1, columnIndex));
                Put("layer.0.SelfAttention.q", W($"{self}.q"), rows, dims);
                Put("layer.0.SelfAttention.k", W($"{self}.k"), rows, dims);
                Put("layer.0.SelfAttention.v", W($"{self}.v"), rows, dims);
                Put("layer.0.SelfAttention.o", W($"{self}.o"), dims, rows);
                side["layer.0.layer_norm.weight"].copy_(weights[$"{prefix}.0.layer_norm.weight"].index_select(0, dims));
                if (decoder)
                {
                    var crossRows = HeadRows(I($"{cross}.q") + I($"{cross}.k") + I($"{cross}.v"), I($"{cross}.o"), c);
                    Put("layer.1.EncDecAttention.q", W($"{cross}.q"), crossRows, dims);
                    Put("layer.1.EncDecAttention.k", W($"{cross}.k"), crossRows, crossSourceDims!);
                    Put("layer.1.EncDecAttention.v", W($"{cross}.v"), crossRows, crossSourceDims!);
                    Put("layer.1.EncDecAttention.o", W($"{cross}.o"), dims, crossRows);
                    side["layer.1.layer_norm.weight"].copy_(weights[$"{prefix}.1.layer_norm.weight"].index_select(0, dims));
                }
                if (c.GatedFeedForward)
                {
                    Put($"{sideFf}.wi_0", W($"{ff}.wi_0"), ffRows, dims);
                    Put($"{sideFf}.wi_1", W($"{ff}.wi_1"), ffRows, dims);
                }
                else Put($"{sideFf}.wi", W($"{ff}.wi"), ffRows, dims);
                Put($"{sideFf}.wo", W($"{ff}.wo"), dims, ffRows);
                side[$"layer.{(decoder ? 2 : 1)}.layer_norm.weight"].copy_(weights[$"{prefix}.{(decoder ? 2 : 1)}.layer_norm.weight"].index_select(0, dims));
                if (j == 0)
                {
                    // The stack's relative position bias lives in its first block; every head is kept, so is the table.
                    side["layer.0.SelfAttention.relative_attention_bias.weight"].copy_(weights[$"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]);
                }
                var select = zeros(SideConfig.DModel, c.DModel);
                select.index_put_(ones(SideConfig.DModel), arange(SideConfig.DModel), dims);
                downs[j + 1].weight!.copy_(select);
                if (j == 0) downs[0].weight!.copy_(select);
                lastDims?.Dispose();
                lastDims = dims.DetachFromDisposeScope();
            }
            sideStack.final_layer_norm.weight.copy_(weights[$"{stack}.final_layer_norm.weight"].index_select(0, lastDims!));
            return lastDims!;
        }
    }

    /// <summary>
    /// In every head, the d_kv/k dimensions of highest importance (q, k and v rows, o columns together, so the
    /// kept query and key dimensions still pair up): the rows of q, k, v (columns of o) kept, head by head.
    /// </summary>
    Tensor HeadRows(Tensor qkv, Tensor o, T5Config c)
    {
        var score = qkv.sum(1).reshape(c.NumHeads, c.DKv) + o.sum(new long[] { 0 }).reshape(c.NumHeads, c.DKv);
        var kept = score.topk(SideConfig.DKv, dim: 1).indexes.sort(dim: 1).Values + arange(c.NumHeads, dtype: ScalarType.Int64).unsqueeze(1) * c.DKv;
        return kept.reshape(-1);
    }

    // ---- files: side_network.safetensors + side_network.json, as the decoder-only side network ----

    public void Save(string folder, bool overwrite) => AtomicFile.WriteDirectory(folder, overwrite, WriteInto);

    public void WriteInto(string folder)
    {
        File.WriteAllText(Path.Combine(folder, LadderSideNetwork.ConfigFile), JsonSerializer.Serialize(Config with { Architecture = "t5" }, new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.Write(Path.Combine(folder, LadderSideNetwork.WeightsFile), state_dict().OrderBy(p => p.Key, StringComparer.Ordinal), SafetensorsHeader.PyTorchMetadata);
    }

    /// <summary>Loads a saved T5 side network for <paramref name="backbone"/>, refusing one built for another backbone.</summary>
    public static T5LadderSideNetwork Load(string folder, T5ForConditionalGeneration backbone)
    {
        string full = Path.GetFullPath(folder);
        string configPath = Path.Combine(full, LadderSideNetwork.ConfigFile);
        if (!File.Exists(configPath))
            throw LoraShellException.NotFound("SideNetworkNotFound", $"'{full}' has no {LadderSideNetwork.ConfigFile}; a side-network folder holds {LadderSideNetwork.ConfigFile} and {LadderSideNetwork.WeightsFile}.", full);
        var config = LadderConfig.FromJson(File.ReadAllText(configPath), configPath);
        var c = backbone.Config;
        if (config.Architecture != "t5" || config.BackboneHiddenSize != c.DModel || config.BackboneLayers != c.NumLayers || config.BackboneDecoderLayers != c.NumDecoderLayers
            || config.BackboneHeads != c.NumHeads || config.BackboneVocabSize != c.VocabSize)
            throw LoraShellException.InvalidData("SideNetworkForAnotherBackbone",
                $"Side network '{full}' was built for a{(config.Architecture == "t5" ? " T5" : " decoder-only")} backbone with d_model {config.BackboneHiddenSize}, {config.BackboneLayers}+{config.BackboneDecoderLayers} layers, {config.BackboneHeads} heads and vocabulary {config.BackboneVocabSize}; this T5 has {c.DModel}, {c.NumLayers}+{c.NumDecoderLayers}, {c.NumHeads} and {c.VocabSize}.", full);
        var side = new T5LadderSideNetwork(config, c);
        try
        {
            using var file = SafetensorsFile.Open(Path.Combine(full, LadderSideNetwork.WeightsFile));
            var shapes = file.Names.ToDictionary(n => n, n => file[n].Shape);
            StateDictLoader.Load(side, full, shapes, file.ReadTensor);
            side.to(backbone.shared.weight!.device);
            return side;
        }
        catch { side.Dispose(); throw; }
    }
}
