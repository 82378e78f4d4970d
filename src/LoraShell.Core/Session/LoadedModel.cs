using LoraShell.Core.Inference;
using LoraShell.Core.Lora;
using LoraShell.Core.Models;
using LoraShell.Core.Models.T5;
using LoraShell.Core.SideTuning;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training;
using static TorchSharp.torch;

namespace LoraShell.Core.Session;

/// <summary>
/// A model as a user holds it: the network, its tokenizer, its LoRA adapters and an optional ladder
/// side network, with where it came from. What cmdlets and notebooks carry; every layer below works on
/// the parts it needs.
/// </summary>
public sealed class LoadedModel : ITrainingSubject, IDisposable
{
    public LoadedModel(CausalLM model, ITextTokenizer? tokenizer, string sourcePath, string format)
        : this((IAdaptableModel)model, tokenizer, sourcePath, format) => _decoderOnly = model;

    /// <summary>An encoder-decoder (T5) model: adapters, text-to-text training and scoring, generation.</summary>
    public LoadedModel(T5ForConditionalGeneration model, ITextTokenizer? tokenizer, string sourcePath, string format)
        : this((IAdaptableModel)model, tokenizer, sourcePath, format) => EncoderDecoder = model;

    LoadedModel(IAdaptableModel network, ITextTokenizer? tokenizer, string sourcePath, string format)
    {
        Network = network;
        Tokenizer = tokenizer;
        SourcePath = sourcePath;
        Format = format;
        Adapters = new LoraAdapterSet(network);
    }

    readonly CausalLM? _decoderOnly;

    /// <summary>Loads a llama2.c checkpoint or a Hugging Face folder (see <see cref="ModelLoader"/>).</summary>
    public static LoadedModel Load(ModelLoadOptions options) => ModelLoader.Load(options);

    /// <summary>The model as adapters and training see it, whatever its architecture.</summary>
    public IAdaptableModel Network { get; }

    /// <summary>The decoder-only model; what works on decoder-only models alone refuses a T5 here, by name.</summary>
    public CausalLM Model => _decoderOnly ?? throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5",
        $"'{Name}' is a T5 encoder-decoder; this works on decoder-only models only. T5 trains on {{\"input\", \"target\"}} pairs, scores a target with Measure-LoraPerplexity -InputText, and takes LoRA adapters (q, v, k, o, wi, wo) and Ladder side networks.", Name);

    /// <summary>The encoder-decoder model, when this is one.</summary>
    public T5ForConditionalGeneration? EncoderDecoder { get; }

    public bool IsEncoderDecoder => EncoderDecoder is not null;

    /// <summary>A ladder side network beside a T5 model (side encoder and decoder).</summary>
    public T5LadderSideNetwork? EncoderDecoderSideNetwork { get; set; }
    public ITextTokenizer? Tokenizer { get; }
    /// <summary>The model's LoRA adapters.</summary>
    public LoraAdapterSet Adapters { get; }
    /// <summary>A ladder side network beside the model, when one is attached (trained or loaded).</summary>
    public LadderSideNetwork? SideNetwork { get; set; }
    public string SourcePath { get; }
    /// <summary>
    /// What adapters record as base_model_name_or_path, as PEFT does (the model's config._name_or_path):
    /// config.json's <c>_name_or_path</c> when it is a hub id, else the path as the user gave it.
    /// </summary>
    public string NameOrPath { get => _nameOrPath ?? SourcePath; init => _nameOrPath = value; }
    /// <summary>What loading noticed and went on with (a tied head beside an lm_head in the file, …).</summary>
    public IReadOnlyList<string> LoadWarnings { get; init; } = Array.Empty<string>();
    readonly string? _nameOrPath;
    /// <summary>"llama2.c" or "huggingface".</summary>
    public string Format { get; }
    public string Name => System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(SourcePath));

    public ITextTokenizer RequireTokenizer() => Tokenizer ?? throw LoraShellException.NotFound("TokenizerRequired",
        $"Model '{SourcePath}' was loaded without a tokenizer; load it with a tokenizer path (-TokenizerPath) to work with text.", SourcePath);

    /// <summary>
    /// Attaches a saved ladder side network (a Start-LoraTraining -Method Ladder result) beside the model: a
    /// decoder-only one or a T5 one, whichever this model is; one built for another backbone is refused.
    /// </summary>
    public void AttachSideNetwork(string folder)
    {
        if (EncoderDecoder is { } t5)
        {
            var side = T5LadderSideNetwork.Load(folder, t5);
            EncoderDecoderSideNetwork?.Dispose();
            EncoderDecoderSideNetwork = side;
        }
        else
        {
            var side = LadderSideNetwork.Load(folder, Model);
            SideNetwork?.Dispose();
            SideNetwork = side;
        }
    }

    /// <summary>The T5 model with its side network, if attached, as scoring and generation run it.</summary>
    public EncoderDecoderPass EncoderDecoderPass => new(RequireEncoderDecoder("an input and a target"), EncoderDecoderSideNetwork);

    T5ForConditionalGeneration RequireEncoderDecoder(string what) => EncoderDecoder ?? throw new LoraShellException(LoraErrorKind.InvalidOperation, "NeedsEncoderDecoder",
        $"Scoring {what} needs an encoder-decoder (T5) model; '{Name}' is decoder-only. Score the whole text (without -InputText) instead.", Name);

    /// <summary>How likely the model makes <paramref name="target"/> given <paramref name="input"/> (T5): the target tokens' mean loss.</summary>
    public PerplexityResult ScoreTarget(string input, string target) => TextToTextScorer.Score(EncoderDecoderPass, RequireTokenizer(), input, target);

    /// <summary>Logits of the whole model: backbone (with adapters) plus the side network if attached.</summary>
    public Tensor Logits(Tensor ids) => SideNetwork?.Forward(Model, ids) ?? Model.forward(ids);

    public PerplexityResult Perplexity(string text, int? windowLength = null, int batchSize = 8, IProgress<double>? progress = null, CancellationToken cancel = default)
        => PerplexityEvaluator.Evaluate(Model, RequireTokenizer(), text, SideNetwork is null ? null : Logits, windowLength, batchSize, progress, cancel);

    public GenerationResult Generate(GenerationOptions options, IProgress<int>? tokensDone = null, CancellationToken cancel = default)
        => EncoderDecoder is null ? TextGenerator.Generate(Model, RequireTokenizer(), options, SideNetwork, tokensDone, cancel)
            : GenerateFromInput(options, tokensDone, cancel);

    /// <summary>T5: the prompt is the encoder's input; the result is what the decoder writes (EOS ends it).</summary>
    GenerationResult GenerateFromInput(GenerationOptions options, IProgress<int>? tokensDone, CancellationToken cancel)
    {
        options.Validate();
        var tokenizer = RequireTokenizer();
        var pass = EncoderDecoderPass;
        var input = TextToTextEncoding.Source(tokenizer, options.Prompt, pass.Model.Config.EosTokenId);
        using var generator = options.Seed is long seed ? new TorchSharp.torch.Generator((ulong)seed, TorchSharp.torch.CPU) : null;
        var stops = options.StopAtSpecialTokens ? tokenizer.StopIds.Select(i => (long)i).Append(pass.Model.Config.EosTokenId).ToHashSet() : new HashSet<long>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var tokens = T5Generation.Decode(pass, input, options.MaxTokens, logits => TextGenerator.Pick(logits, options, generator), stops, tokensDone: tokensDone, cancel: cancel);
        bool stopped = tokens.Count > 0 && stops.Contains(tokens[^1]);
        var generated = (stopped ? tokens.Take(tokens.Count - 1) : tokens).Select(t => (int)t).ToList();
        string completion = tokenizer.Decode(generated, skipSpecialTokens: true);
        return new GenerationResult(completion, completion, input.Select(i => (int)i).ToList(), generated, stopped ? "EndOfText" : "MaxTokens", clock.Elapsed.TotalSeconds);
    }

    /// <summary>The model's reply to a conversation, rendered with its chat template.</summary>
    public GenerationResult GenerateChat(IReadOnlyList<ChatMessage> messages, GenerationOptions options, IReadOnlyDictionary<string, object?>? templateArguments = null,
        IProgress<int>? tokensDone = null, CancellationToken cancel = default)
        => TextGenerator.GenerateChat(Model, RequireTokenizer(), messages, options, templateArguments, SideNetwork, tokensDone, cancel);

    /// <summary>Writes the model (and its tokenizer file) as a Hugging Face folder.</summary>
    public DirectoryInfo SaveHuggingFace(string folder, bool overwrite)
    {
        RefuseUnmergedAdapters("saved weights", "Merge them first (Merge-LoraWeights) or disable them.", folder);
        return HuggingFaceWriter.Save(Model, folder, overwrite, TokenizerFiles);
    }

    /// <summary>
    /// Writes the model as one GGUF file for llama.cpp, Ollama and LLamaSharp (tokenizer and chat template
    /// inside), with an Ollama Modelfile beside it. Like <see cref="SaveHuggingFace"/>, active adapters must
    /// be merged first; a side network cannot travel (llama.cpp has no place for it).
    /// </summary>
    public Export.GgufExportResult SaveGguf(string path, IO.Gguf.GgmlType type, Action<string, double>? progress = null, CancellationToken cancel = default)
    {
        RefuseUnmergedAdapters("GGUF weights", "Merge them first (Merge-LoraWeights), disable them, or export the adapter alone (Save-LoraAdapter -Format Gguf).", path);
        if (SideNetwork is not null)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "SideNetworkNotExportable",
                "This model has a ladder side network attached; llama.cpp has no place for one, so a GGUF of the backbone alone would not be the model you trained. Export it without the side network (import the model again without -SideNetworkPath).", path);
        var result = Export.GgufModelExport.Save(Model, Tokenizer, path, type, System.IO.Path.GetFileNameWithoutExtension(Name), progress, cancel);
        string modelfile = Export.OllamaModelfile.PathFor(path);
        IO.AtomicFile.WriteAllText(modelfile, Export.OllamaModelfile.Render(modelfile, path, null, Export.OllamaModelfile.StopStrings(Tokenizer)));
        return result with { Modelfile = new FileInfo(modelfile) };
    }

    /// <summary>An export writes the base weights: active adapters that are not merged into them would be lost.</summary>
    void RefuseUnmergedAdapters(string written, string remedy, string target)
    {
        var unmerged = Adapters.Disabled ? new List<string>() : Adapters.ActiveNames.Except(Adapters.MergedNames).ToList();
        if (unmerged.Count > 0)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "UnmergedAdapters",
                $"Adapter(s) {string.Join(", ", unmerged)} are active but not merged, so the {written} would not include them. {remedy}", target);
    }

    /// <summary>The tokenizer's files, copied under their own names (the loader finds tokenizer.json, tokenizer.model and tok*.bin files).</summary>
    public IEnumerable<string> TokenizerFiles => Tokenizer?.Files ?? (IEnumerable<string>)Array.Empty<string>();

    public void Dispose()
    {
        SideNetwork?.Dispose();
        EncoderDecoderSideNetwork?.Dispose();
        Network.Module.Dispose();
    }
}
