using System.Management.Automation;
using LoraShell.Core.Lora;
using LoraShell.Core.Memory;
using LoraShell.Core.Models;
using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Training;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsDiagnostic.Measure, "LoraMemory", DefaultParameterSetName = PresetSet)]
[OutputType(typeof(MemoryEstimateReport))]
[CmdletHelp(
    "Estimates the training memory of Full, Lora and Ladder fine-tuning, and the GPUs it takes.",
    "Measure-LoraMemory counts, from a model's architecture, the bytes of weights, gradients and AdamW states for the chosen -Precision (Fp32; Bf16Mixed: bf16 weights and gradients with a float32 gradient buffer, float32 master weights and moments, 20 bytes per trainable weight; Int8Base/Int4Base: quantised frozen Linear weights for Lora and Ladder) and -Quantization (how Import-LoraModel -Quantization stores the frozen decoder projections: Int8 about 1 byte per weight, Nf4 about 0.56, 0.52 with -DoubleQuant; a piped quantized model brings its own), plus the activations backward keeps for one micro-batch of -BatchSize x -SequenceLength tokens, tensor by tensor for a Llama block (with -ActivationCheckpointing only each layer's input and one recomputed layer), and the loss's logits buffers (-FusedCrossEntropy: logits and their gradient only). -Gpus is the fewest GPUs of -GpuMemoryGB that hold the states sharded across them (ZeRO-3/FSDP) plus each GPU's own activations. The architecture comes from -Preset, a config.json (-Path reads nothing else), a piped model, or -HiddenSize and -LayerCount; -ParameterCount alone gives weights, gradients and optimizer states of full fine-tuning only. Nothing is loaded or allocated. The estimate was checked against measured peak memory of real training runs (tests: within 10% for Full and Lora with and without checkpointing and on Int8 and NF4 bases, 25% for Ladder). Encoder-decoders (T5: -Preset t5-small, t5-base, flan-t5-base, flan-t5-large, mt0-xxl, a T5 config.json or a piped T5 model) are counted text-to-text: the encoder over -SequenceLength input tokens, the decoder over -TargetLength target tokens with cross-attention to the input, T5's eager attention, and for Ladder side stacks beside both (checked against measured runs within 15%, 25% for Ladder).")]
[CmdletExample(
    """
    Measure-LoraMemory -Preset Qwen1.5-7B, Qwen1.5-72B -Method Full, Lora `
        -Precision Bf16Mixed -ActivationCheckpointing -FusedCrossEntropy `
        -SequenceLength 2048
    """,
    "Full fine-tuning against LoRA for Qwen1.5 7B and 72B, with the GPUs of 80 GB each needs.",
    Output = """
    Model        Method Precision   Trainable Weights Activ GB Total GB       GPUs
    -----        ------ ---------   --------- ------- -------- --------       ----
    Qwen1.5-7B   Full   Bf16Mixed       7.72B   15.44     2.32    154.4  2 x 80 GB
    Qwen1.5-7B   Lora   Bf16Mixed      19.99M   15.48     2.32     18.2  1 x 80 GB
    Qwen1.5-72B  Full   Bf16Mixed      72.29B  144.58     5.07  1,445.8 20 x 80 GB
    Qwen1.5-72B  Lora   Bf16Mixed     104.86M  144.79     5.07    151.7  2 x 80 GB
    """)]
[CmdletExample(
    """
    Import-LoraModel ../shared/models/stories260K/stories260K.bin |
        Measure-LoraMemory -Method Full,Lora,Ladder -BatchSize 16 -SequenceLength 256 `
            -ReductionFactor 4
    """,
    "What training the loaded model takes on this machine, per method, in float32.")]
[CmdletExample(
    """
    Measure-LoraMemory -Preset Llama-3-8B -Method Lora -Precision Int4Base, Bf16Mixed `
        -GpuMemoryGB 24 |
        Format-Table Precision, WeightsGB, TotalGB, Gpus
    """,
    "QLoRA (a 4-bit base) fits one 24 GB GPU; LoRA on a bf16 base needs two.",
    Output = """
    Precision WeightsGB TotalGB Gpus
    --------- --------- ------- ----
     Int4Base      6.07   21.34    1
    Bf16Mixed     16.10   30.90    2
    """)]
[CmdletExample(
    """
    Measure-LoraMemory -HiddenSize 2048 -LayerCount 22 -HeadCount 32 -KeyValueHeadCount 4 -IntermediateSize 5632 `
        -Method Lora -Quantization Nf4 -ActivationCheckpointing -SequenceLength 512
    """,
    "What QLoRA training of a TinyLlama-1.1B-shaped model with gradient checkpointing takes on this machine (float32 compute over an NF4 base).")]
[CmdletExample(
    """
    Measure-LoraMemory -Preset t5-base -Method Full, Lora, Ladder -TargetModules q, v `
        -BatchSize 100 -SequenceLength 128 -TargetLength 4
    """,
    "The LST paper's setting: T5-base trained text-to-text on GLUE-length inputs at batch 100; Ladder side-tuning (k 8 beside both stacks) against LoRA on q and v and full fine-tuning.")]
public sealed class MeasureLoraMemoryCommand : LoraCmdlet
{
    const string PresetSet = "Preset", PathSet = "Path", LiteralPathSet = "LiteralPath", ModelSet = "Model", ShapeSet = "Architecture", CountSet = "ParameterCount";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PresetSet, HelpMessage = "Known architectures: Qwen1.5-7B, Qwen1.5-72B, Llama-2-7B, Llama-3-8B, stories260K, … and the encoder-decoders t5-small, t5-base, flan-t5-base, flan-t5-large, mt0-xxl (tab completion lists them all).")]
    [ArgumentCompleter(typeof(PresetCompleter))]
    public string[] Preset { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = PathSet, HelpMessage = "A Hugging Face config.json, or the model folder holding it; only that file is read. Wildcards allowed.")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, HelpMessage = "Like -Path, without wildcard expansion.")]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ModelSet, HelpMessage = "A loaded model (from Import-LoraModel) whose architecture is used.")]
    public LoraModel Model { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = ShapeSet, HelpMessage = "Hidden (model) width of a Llama-family decoder.")]
    [ValidateRange(1, int.MaxValue)]
    public int HiddenSize { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ShapeSet, HelpMessage = "Number of decoder layers.")]
    [ValidateRange(1, int.MaxValue)]
    public int LayerCount { get; set; }

    [Parameter(ParameterSetName = ShapeSet, HelpMessage = "MLP width (default: 8/3 of -HiddenSize rounded up to a multiple of 256, as Llama does).")]
    [ValidateRange(1, int.MaxValue)]
    public int? IntermediateSize { get; set; }

    [Parameter(ParameterSetName = ShapeSet, HelpMessage = "Attention heads (default: -HiddenSize / 128).")]
    [ValidateRange(1, int.MaxValue)]
    public int? HeadCount { get; set; }

    [Parameter(ParameterSetName = ShapeSet, HelpMessage = "Key/value heads for grouped-query attention (default: -HeadCount).")]
    [ValidateRange(1, int.MaxValue)]
    public int? KeyValueHeadCount { get; set; }

    [Parameter(ParameterSetName = ShapeSet, HelpMessage = "Vocabulary size (default 32000).")]
    [ValidateRange(1, int.MaxValue)]
    public int VocabSize { get; set; } = 32000;

    [Parameter(Mandatory = true, ParameterSetName = CountSet, HelpMessage = "Total parameters; without an architecture only full fine-tuning's weights, gradients and optimizer states are estimated.")]
    [ValidateRange(1L, long.MaxValue)]
    public long ParameterCount { get; set; }

    [Parameter(HelpMessage = "Training method(s), one row each: Full, Lora, Ladder (default Full, Lora, Ladder).")]
    public TrainingMethod[] Method { get; set; } = { TrainingMethod.Full, TrainingMethod.Lora, TrainingMethod.Ladder };

    [Parameter(HelpMessage = "Storage precision(s), one row each: Fp32, Bf16Mixed, Int8Base, Int4Base (quantised bases apply to Lora and Ladder). Default Fp32.")]
    public TrainingPrecision[] Precision { get; set; } = { TrainingPrecision.Fp32 };

    [Parameter(HelpMessage = "How the frozen decoder projections are stored for Lora and Ladder, as Import-LoraModel -Quantization does: None (dense, the default; a piped model's own format), Int8 or Nf4. Full fine-tuning cannot train a quantized base, and -Precision Int8Base/Int4Base already name a base (Int8/Nf4), so a different -Quantization with them is refused.")]
    public BaseQuantization? Quantization { get; set; }

    [Parameter(HelpMessage = "With -Quantization Nf4: count the absmax values quantized to 8 bits (Import-LoraModel -DoubleQuant).")]
    public SwitchParameter DoubleQuant { get; set; }

    [Parameter(HelpMessage = "Sequences per micro-batch on each GPU (default 1).")]
    [ValidateRange(1, int.MaxValue)]
    public int BatchSize { get; set; } = 1;

    [Parameter(HelpMessage = "Tokens per sequence (default 2048).")]
    [ValidateRange(1, int.MaxValue)]
    public int SequenceLength { get; set; } = 2048;

    [Parameter(HelpMessage = "Encoder-decoder (T5) models: tokens per target (the decoder's sequence; default: -SequenceLength).")]
    [ValidateRange(1, int.MaxValue)]
    public int? TargetLength { get; set; }

    [Parameter(HelpMessage = "Keep only each layer's input and recompute layers in backward.")]
    public SwitchParameter ActivationCheckpointing { get; set; }

    [Parameter(HelpMessage = "Count a chunked/fused cross-entropy (logits and their gradient only) instead of float32 log-softmax and gradient buffers.")]
    public SwitchParameter FusedCrossEntropy { get; set; }

    [Parameter(HelpMessage = "Tokens whose logits exist at once when the loss is computed in chunks (LoraShell's own trainer: about 8M logits per chunk); default: the whole micro-batch.")]
    [ValidateRange(1, int.MaxValue)]
    public int? LossChunkTokens { get; set; }

    [Parameter(HelpMessage = "Count eager attention, which keeps [heads, seq, seq] scores and probabilities, instead of a fused kernel.")]
    public SwitchParameter EagerAttention { get; set; }

    [Parameter(HelpMessage = "LoRA rank for -Method Lora (default 8).")]
    [ValidateRange(1, 4096)]
    public int Rank { get; set; } = 8;

    [Parameter(HelpMessage = "Count DoRA adapters (Add-LoraAdapter -UseDora): a magnitude per output row of each adapted module, and per token the low-rank and base outputs the magnitude's gradient needs. Default: for a piped model, whether its active adapter uses DoRA.")]
    public SwitchParameter UseDora { get; set; }

    [Parameter(HelpMessage = "Modules the adapter keeps a trained copy of (Add-LoraAdapter -ModulesToSave: lm_head, embed_tokens, norm, …); they count as trainable weights. Default: for a piped model, its active adapter's.")]
    public string[]? ModulesToSave { get; set; }

    [Parameter(HelpMessage = "Embedding rows the adapter trains (Add-LoraAdapter -TrainableTokenIndices): a row of hidden-size weights each, trainable. Default: for a piped model, its active adapter's count.")]
    [ValidateRange(0, int.MaxValue)]
    public int? TrainableTokens { get; set; }

    [Parameter(HelpMessage = "LoRA target modules: names such as q_proj, v_proj, or all-linear. Default: for a piped model, what training it would adapt (its active adapter's modules, or q_proj and v_proj, the adapter Start-LoraTraining adds); for a preset or shape, all-linear.")]
    [ArgumentCompleter(typeof(TargetModulesCompleter))]
    public string[] TargetModules { get; set; } = { "all-linear" };

    [Parameter(HelpMessage = "Ladder side-network reduction factor k (width d/k; default 8).")]
    [ValidateRange(1, 1024)]
    public int ReductionFactor { get; set; } = 8;

    [Parameter(HelpMessage = "Backbone layers feeding the Ladder side network (default: all).")]
    public int[]? SideLayers { get; set; }

    [Parameter(HelpMessage = "Memory of one GPU in GB (default 80).")]
    [ValidateRange(0.001, 1e6)]
    public double GpuMemoryGB { get; set; } = 80;

    [Parameter(HelpMessage = "Memory each GPU loses to the runtime (CUDA context, communication buffers), in GB (default 0).")]
    [ValidateRange(0.0, 1e6)]
    public double PerGpuOverheadGB { get; set; }

    protected override void Process()
    {
        var targets = TargetModules;
        if (ParameterSetName == ModelSet && !MyInvocation.BoundParameters.ContainsKey(nameof(TargetModules)) && Model.EncoderDecoder)
            targets = Model.Loaded.Adapters.ActiveNames.FirstOrDefault() is string t5Active ? Model.Loaded.Adapters.Info(t5Active).TargetModules.ToArray() : Model.Loaded.Network.DefaultLoraTargets.ToArray();
        else if (ParameterSetName == ModelSet && !MyInvocation.BoundParameters.ContainsKey(nameof(TargetModules)))
        {
            // The same defaults as a training run of this model: its active adapter, else the one Start-LoraTraining adds.
            var active = Model.Loaded.Adapters.ActiveNames.FirstOrDefault();
            targets = active is null ? new LoraConfig().TargetModules!.ToArray() : Model.Loaded.Adapters.Info(active).TargetModules.ToArray();
            WriteVerbose($"LoRA targets: {string.Join(", ", targets)} ({(active is null ? "the adapter Start-LoraTraining adds to a model without one" : $"adapter '{active}'")}); -TargetModules chooses others.");
        }
        bool useDora = UseDora || (ParameterSetName == ModelSet && !MyInvocation.BoundParameters.ContainsKey(nameof(UseDora))
            && Model.Loaded.Adapters.ActiveNames.FirstOrDefault() is string activeName && Model.Loaded.Adapters.ConfigOf(activeName).UseDora);
        var modulesToSave = ModulesToSave ?? (ParameterSetName == ModelSet && Model.Loaded.Adapters.ActiveNames.FirstOrDefault() is string saving
            ? Model.Loaded.Adapters.ConfigOf(saving).ModulesToSave?.ToArray() : null);
        int trainableTokens = TrainableTokens ?? (ParameterSetName == ModelSet && Model.Loaded.Adapters.ActiveNames.FirstOrDefault() is string rowing
            ? Model.Loaded.Adapters.Info(rowing).TrainableTokens : 0);
        foreach (var (name, config, t5) in Architectures())
            foreach (var method in Method)
                foreach (var precision in Precision)
                {
                    var quantization = Quantization ?? (ParameterSetName == ModelSet ? Model.Loaded.Network.Format.Quantization : BaseQuantization.None);
                    bool doubleQuant = DoubleQuant || (ParameterSetName == ModelSet && !MyInvocation.BoundParameters.ContainsKey(nameof(Quantization)) && Model.Loaded.Network.Format.DoubleQuant);
                    if (method == TrainingMethod.Full && quantization != BaseQuantization.None)
                    {
                        if (!MyInvocation.BoundParameters.ContainsKey(nameof(Method))) { WriteVerbose($"Full left out: it cannot train a {quantization} base."); continue; }
                        throw Core.LoraShellException.InvalidArgument("QuantizedFullFineTune",
                            $"Full fine-tuning trains every weight, so it cannot keep a {quantization} base; estimate -Method Lora or Ladder, or Full with -Quantization None.", quantization);
                    }
                    var options = new MemoryEstimateOptions
                    {
                        Method = method, Precision = precision, Quantization = quantization, DoubleQuant = doubleQuant,
                        BatchSize = BatchSize, SequenceLength = SequenceLength, TargetLength = TargetLength, ActivationCheckpointing = ActivationCheckpointing,
                        FusedCrossEntropy = FusedCrossEntropy, LossChunkTokens = LossChunkTokens, EagerAttention = EagerAttention, LoraRank = Rank, LoraTargets = targets, UseDora = useDora, ModulesToSave = modulesToSave, TrainableTokens = trainableTokens,
                        ReductionFactor = ReductionFactor, SideLayers = SideLayers, GpuMemoryGB = GpuMemoryGB, PerGpuOverheadGB = PerGpuOverheadGB,
                    };
                    var estimate = t5 is not null ? T5MemoryEstimator.Estimate(t5, options, name)
                        : config is null ? MemoryEstimator.EstimateStates(ParameterCount, options, name) : MemoryEstimator.Estimate(config, options, name);
                    WriteObject(MemoryEstimateReport.From(estimate));
                }
    }

    /// <summary>The architectures asked for: a decoder-only one, a T5 one, or (parameter count alone) neither.</summary>
    IEnumerable<(string Name, ModelConfig? Config, Core.Models.T5.T5Config? T5)> Architectures()
    {
        switch (ParameterSetName)
        {
            case PresetSet:
                foreach (var p in Preset)
                    yield return ModelPresets.EncoderDecoder.TryGetValue(p, out var t5) ? (p, null, t5) : (p, ModelPresets.Get(p), null);
                break;
            case ModelSet:
                yield return Model.Loaded.EncoderDecoder is { } t5Model ? (Model.Name, null, t5Model.Config) : (Model.Name, Model.Loaded.Model.Config, null);
                break;
            case ShapeSet:
                int heads = HeadCount ?? Math.Max(1, HiddenSize / 128);
                yield return ($"custom {HiddenSize}x{LayerCount}", new ModelConfig
                {
                    HiddenSize = HiddenSize, NumHiddenLayers = LayerCount, NumAttentionHeads = heads, NumKeyValueHeads = KeyValueHeadCount ?? heads,
                    IntermediateSize = IntermediateSize ?? (int)(Math.Ceiling(8.0 * HiddenSize / 3 / 256) * 256), VocabSize = VocabSize,
                }, null);
                break;
            case CountSet:
                yield return ($"{ParameterCount:N0} parameters", null, null);
                break;
            default:
                foreach (var file in ConfigFiles())
                {
                    string name = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(file)) ?? file, json = File.ReadAllText(file);
                    yield return IsT5Config(json) ? (name, null, Core.Models.T5.T5Config.FromJson(json, file)) : (name, ModelConfig.FromJson(json, file), null);
                }
                break;
        }
    }

    static bool IsT5Config(string json)
    {
        try { return System.Text.Json.Nodes.JsonNode.Parse(json) is System.Text.Json.Nodes.JsonObject o && Core.Models.T5.T5Config.IsT5(o); }
        catch (System.Text.Json.JsonException) { return false; } // ModelConfig.FromJson says what is wrong
    }

    IEnumerable<string> ConfigFiles()
    {
        var paths = ParameterSetName == LiteralPathSet ? LiteralPath.Select(ResolveLiteral) : Path.SelectMany(p => ResolveMany(p, nameof(Path)));
        foreach (var path in paths)
        {
            string file = Directory.Exists(path) ? System.IO.Path.Combine(path, "config.json") : path;
            if (!File.Exists(file))
                throw Core.LoraShellException.NotFound("ConfigNotFound",
                    Directory.Exists(path) ? $"Folder '{path}' has no config.json; Measure-LoraMemory reads a Hugging Face config.json." : $"'{path}' does not exist; give a config.json or the model folder holding it.", path);
            yield return file;
        }
    }
}

/// <summary>Completes -Preset with the known architectures.</summary>
public sealed class PresetCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
        => ModelPresets.Names.Where(n => n.StartsWith(wordToComplete.Trim('\'', '"'), StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n, n, CompletionResultType.ParameterValue, $"{n}: {(ModelPresets.EncoderDecoder.TryGetValue(n, out var t5) ? T5MemoryEstimator.Parameters(t5) : ModelPresets.Get(n).ParameterCount):N0} parameters"));
}
