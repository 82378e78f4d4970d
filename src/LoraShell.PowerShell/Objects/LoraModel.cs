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
    /// <summary>HF model_type: llama, mistral, qwen2, qwen3, phi3 or gpt2.</summary>
    public string Family => Loaded.Model.Config.ModelType;
    /// <summary>Weights, including those held quantized (and any adapter's).</summary>
    public long Parameters => Loaded.Model.WeightCount;
    /// <summary>How the decoder's projections are stored: None, Int8 or Nf4 (with double quantization, Nf4+DQ).</summary>
    public string Quantization => Loaded.Model.Format.Quantization == Core.Models.Quantization.BaseQuantization.None ? "None"
        : Loaded.Model.Format.Quantization + (Loaded.Model.Format.DoubleQuant ? "+DQ" : "");
    /// <summary>Memory the weights take, in MiB (quantized codes and statistics counted as stored).</summary>
    public double WeightMiB => Loaded.Model.WeightBytes / 1048576.0;
    public string Device => Loaded.Model.Device.ToString();
    public string DType => HuggingFaceWriter.TorchDTypeName(Loaded.Model.DType);
    public int Layers => Loaded.Model.Config.NumHiddenLayers;
    public int HiddenSize => Loaded.Model.Config.HiddenSize;
    public int Heads => Loaded.Model.Config.NumAttentionHeads;
    public int KeyValueHeads => Loaded.Model.Config.NumKeyValueHeads;
    public int VocabSize => Loaded.Model.Config.VocabSize;
    public int ContextLength => Loaded.Model.Config.MaxPositionEmbeddings;
    public string? Tokenizer => Loaded.Tokenizer?.Source;
    /// <summary>Names of the model's LoRA adapters.</summary>
    public string[] Adapters => Loaded.Adapters.Names.ToArray();
    public string[] ActiveAdapters => Loaded.Adapters.Disabled ? Array.Empty<string>() : Loaded.Adapters.ActiveNames.ToArray();
    public string[] MergedAdapters => Loaded.Adapters.MergedNames.ToArray();
    /// <summary>The attached ladder side network's folder or shape, if any.</summary>
    public string? SideNetwork => Loaded.SideNetwork is { } s ? $"width {s.SideConfig.HiddenSize}, {s.Layers.Count} blocks, {s.parameters().Sum(p => p.numel()):N0} parameters" : null;
    /// <summary>Logit parity of the last Merge-LoraWeights on this model.</summary>
    public Core.Lora.MergeParity? LastMergeParity { get; internal set; }

    /// <summary>Names of the Linear modules inside the decoder layers (what LoRA can target).</summary>
    public string[] LinearModules => Loaded.Model.LinearSlots().Select(s => s.Path).ToArray();

    public override string ToString() => Removed ? $"{Name} (removed)" : $"{Name} ({Parameters:N0} parameters, {Device}, {DType})";
}
