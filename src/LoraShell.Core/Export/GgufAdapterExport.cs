using LoraShell.Core.IO;
using LoraShell.Core.IO.Gguf;
using LoraShell.Core.Lora;
using LoraShell.Core.Models.Families;
using static TorchSharp.torch;

namespace LoraShell.Core.Export;

/// <summary>
/// A LoRA adapter as llama.cpp's <c>--lora</c> (and Ollama's <c>ADAPTER</c>) reads it: <c>general.type =
/// adapter</c>, <c>adapter.type = lora</c>, <c>adapter.lora.alpha</c> as FLOAT32 (llama.cpp aborts on an
/// integer), and per adapted matrix <c>&lt;gguf tensor&gt;.lora_a</c> (PEFT's A, ne [in, r]) and
/// <c>.lora_b</c> (B, ne [r, out]). llama.cpp scales every pair by alpha / r with one alpha for the file
/// and r read from each pair, so a module whose scaling is not alpha / r (rsLoRA, alpha_pattern) carries
/// the difference in its B; a plain adapter's B is written as it is. For the llama architecture B's rows
/// are put in the interleaved rope order of the exported base, as the base's q/k rows are.
/// </summary>
public static class GgufAdapterExport
{
    public static GgufWriter Plan(LoraAdapterSet adapters, string name, List<string> warnings)
    {
        var config = adapters.ConfigOf(name);
        var model = adapters.Model as Models.CausalLM ?? throw LoraShellException.InvalidArgument("GgufAdapterNotExpressible",
            $"Adapter '{name}' belongs to an encoder-decoder model; llama.cpp's GGUF adapters are for decoder-only models.", name);
        var c = model.Config;
        if (config.UseDora)
            throw LoraShellException.InvalidArgument("GgufAdapterNotExpressible", $"Adapter '{name}' uses DoRA; a GGUF LoRA adapter has no magnitude vector, so llama.cpp could not apply it. Merge it and export the model instead.", name);
        if (adapters.TrainedBiases(name).Any())
            throw LoraShellException.InvalidArgument("GgufAdapterNotExpressible", $"Adapter '{name}' trains biases (bias = '{config.Bias}'); a GGUF LoRA adapter carries only A and B. Merge it and export the model instead.", name);
        if (adapters.EmbeddingLayer() is { } embedding && embedding.Layer.Adapters.Contains(name))
            throw LoraShellException.InvalidArgument("GgufAdapterNotExpressible", $"Adapter '{name}' adapts the token embedding '{embedding.Path}', which a GGUF LoRA adapter does not carry. Merge it and export the model instead.", name);
        if (adapters.HasTokenRows(name))
            throw LoraShellException.InvalidArgument("GgufAdapterNotExpressible", $"Adapter '{name}' trains token rows of the embedding (trainable_token_indices), which a GGUF LoRA adapter does not carry. Merge it and export the model instead.", name);
        if (config.ModulesToSave is { Count: > 0 })
            throw LoraShellException.InvalidArgument("GgufAdapterNotExpressible", $"Adapter '{name}' saves whole modules ({string.Join(", ", config.ModulesToSave)}); a GGUF LoRA adapter carries only A and B. Merge it and export the model instead.", name);
        foreach (var (problem, fatal) in c.Family.GgufLimitations(c))
        {
            if (fatal) throw LoraShellException.InvalidArgument("GgufUnsupportedFeature", $"The base model uses {problem}; its GGUF export is refused, and so is an adapter for it.", c.ModelType);
        }
        var layers = adapters.Layers().Where(l => l.Layer.Adapters.Contains(name)).ToList();
        if (layers.Count == 0)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "NoAdapter", $"Adapter '{name}' wraps no module.", name);
        if (layers.Any(l => l.Layer.Merged.Contains(name)))
            warnings.Add($"Adapter '{name}' is merged into this model's weights: apply the GGUF adapter to the unmerged base, or it counts twice.");

        var arch = c.Family.Gguf;
        float alpha = (float)config.LoraAlpha;
        var w = new GgufWriter();
        w.Add("general.architecture", GgufValue.String(arch.Name));
        w.Add("general.type", GgufValue.String("adapter"));
        w.Add("general.name", GgufValue.String(name));
        w.Add("adapter.type", GgufValue.String("lora"));
        w.Add("adapter.lora.alpha", GgufValue.Float32(alpha));

        var map = GgufNames.ModuleMap(c);
        foreach (var (path, layer) in layers)
        {
            string gguf = GgufNames.TensorName(map, path + ".weight") ?? throw new InvalidOperationException($"no GGUF name for '{path}'");
            var a = layer.lora_A[name].weight!;
            var b = layer.lora_B[name].weight!;
            int rank = (int)a.shape[0];
            // llama.cpp applies alpha / r; what is left of this module's own scaling rides in B.
            double extra = layer.Scaling(name) * rank / alpha;
            int? heads = GgufModelExport.RowLayout(c, path + ".weight", map);
            w.AddTensor(gguf + ".lora_a", a.shape, GgmlType.F32, () => a.detach().to(ScalarType.Float32));
            w.AddTensor(gguf + ".lora_b", b.shape, GgmlType.F32, () =>
            {
                var t = b.detach().to(ScalarType.Float32);
                if (Math.Abs(extra - 1) > 1e-12) t = t * extra;
                return heads is int h ? Models.RopeRowOrder.ToInterleaved(t, h) : t;
            });
        }
        return w;
    }

    public static GgufExportResult Save(LoraAdapterSet adapters, string name, string path, CancellationToken cancel = default)
    {
        var warnings = new List<string>();
        var w = Plan(adapters, name, warnings);
        AtomicFile.Write(path, s => w.Write(s, cancel: cancel));
        return new GgufExportResult(new FileInfo(Path.GetFullPath(path)), w.Tensors.Count(), warnings);
    }
}
