using LoraShell.Core.Models;
using LoraShell.Core.Session;

namespace LoraShell;

/// <summary>
/// The pipeline's model handle (type name LoraShell.LoraModel). It carries LoraShell's own
/// description of the model; the TorchSharp module stays inside.
/// </summary>
public sealed class LoraModel
{
    internal LoraModel(LoadedModel loaded)
    {
        _loaded = loaded;
    }

    LoadedModel? _loaded;

    /// <summary>The model itself; a removed model (Remove-LoraModel) refuses further use with a named error.</summary>
    internal LoadedModel Loaded => _loaded ?? throw new Core.LoraShellException(Core.LoraErrorKind.InvalidOperation, "ModelRemoved",
        $"Model '{RemovedName}' was removed with Remove-LoraModel and its memory freed; import it again to use it.", RemovedName);

    /// <summary>True once Remove-LoraModel freed the model's native memory.</summary>
    public bool Removed => _loaded is null;

    string? RemovedName;

    /// <summary>Frees the native tensors now (the GC does not see their size, so it would wait too long).</summary>
    internal void Remove()
    {
        if (_loaded is null) return;
        RemovedName = _loaded.Name;
        _loaded.Dispose();
        _loaded = null;
    }

    /// <summary>Serialises use of one model from several runspaces (ForEach-Object -Parallel).</summary>
    internal object Gate { get; } = new();

    public string Name => _loaded?.Name ?? RemovedName!;
    public string Path => Loaded.SourcePath;
    public string Format => Loaded.Format;
    /// <summary>HF model_type: llama, mistral, qwen2, qwen3, phi3, gpt2, or t5 / mt5 (encoder-decoder).</summary>
    public string Family => T5 is { } t5 ? t5.Config.ModelType : Loaded.Model.Config.ModelType;
    /// <summary>Weights, including those held quantized (and any adapter's).</summary>
    public long Parameters => T5 is { } t5 ? t5.parameters().Sum(p => p.numel()) : Loaded.Model.WeightCount;
    /// <summary>How the decoder's projections are stored: None, Int8 or Nf4 (with double quantization, Nf4+DQ).</summary>
    public string Quantization => T5 is not null || Loaded.Model.Format.Quantization == Core.Models.Quantization.BaseQuantization.None ? "None"
        : Loaded.Model.Format.Quantization + (Loaded.Model.Format.DoubleQuant ? "+DQ" : "");
    /// <summary>Memory the weights take, in MiB (quantized codes and statistics counted as stored).</summary>
    public double WeightMiB => (T5 is { } t5 ? t5.parameters().Sum(p => p.numel() * p.element_size()) : Loaded.Model.WeightBytes) / 1048576.0;
    public string Device => T5 is { } t5 ? t5.shared.weight!.device.ToString() : Loaded.Model.Device.ToString();
    public string DType => HuggingFaceWriter.TorchDTypeName(T5 is { } t5 ? t5.shared.weight!.dtype : Loaded.Model.DType);
    /// <summary>Decoder layers (T5: encoder blocks; the decoder's are in DecoderLayers).</summary>
    public int Layers => T5 is { } t5 ? t5.Config.NumLayers : Loaded.Model.Config.NumHiddenLayers;
    /// <summary>T5's decoder blocks; 0 for a decoder-only model.</summary>
    public int DecoderLayers => T5?.Config.NumDecoderLayers ?? 0;
    public int HiddenSize => T5 is { } t5 ? t5.Config.DModel : Loaded.Model.Config.HiddenSize;
    public int Heads => T5 is { } t5 ? t5.Config.NumHeads : Loaded.Model.Config.NumAttentionHeads;
    public int KeyValueHeads => T5 is { } t5 ? t5.Config.NumHeads : Loaded.Model.Config.NumKeyValueHeads;
    public int VocabSize => T5 is { } t5 ? t5.Config.VocabSize : Loaded.Model.Config.VocabSize;
    /// <summary>Positions the model was built for; 0 for T5, whose relative position bias has no fixed end.</summary>
    public int ContextLength => T5 is not null ? 0 : Loaded.Model.Config.MaxPositionEmbeddings;
    /// <summary>Whether the model is an encoder-decoder (T5): text-to-text training, -InputText scoring.</summary>
    public bool EncoderDecoder => T5 is not null;
    Core.Models.T5.T5ForConditionalGeneration? T5 => Loaded.EncoderDecoder;
    public string? Tokenizer => Loaded.Tokenizer?.Source;
    /// <summary>Names of the model's LoRA adapters.</summary>
    public string[] Adapters => Loaded.Adapters.Names.ToArray();
    public string[] ActiveAdapters => Loaded.Adapters.Disabled ? Array.Empty<string>() : Loaded.Adapters.ActiveNames.ToArray();
    public string[] MergedAdapters => Loaded.Adapters.MergedNames.ToArray();
    /// <summary>The attached ladder side network's folder or shape, if any.</summary>
    public string? SideNetwork => Loaded.SideNetwork is { } s ? $"width {s.SideConfig.HiddenSize}, {s.Layers.Count} blocks, {s.parameters().Sum(p => p.numel()):N0} parameters"
        : Loaded.EncoderDecoderSideNetwork is { } t ? $"width {t.SideConfig.DModel}, {t.EncoderLayers.Count} encoder + {t.DecoderLayers.Count} decoder blocks, {t.parameters().Sum(p => p.numel()):N0} parameters" : null;
    /// <summary>Logit parity of the last Merge-LoraWeights on this model.</summary>
    public Core.Lora.MergeParity? LastMergeParity { get; internal set; }

    /// <summary>Names of the Linear modules inside the layers (what LoRA can target).</summary>
    public string[] LinearModules => Loaded.Network.LinearSlots().Select(s => s.Path).ToArray();

    public override string ToString() => Removed ? $"{Name} (removed)" : $"{Name} ({Parameters:N0} parameters, {Device}, {DType})";
}
