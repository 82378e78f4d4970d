using LoraShell.Core.Lora;
using LoraShell.Core.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Models;

/// <summary>Options for <see cref="LoadedModel.Load"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>A llama2.c <c>.bin</c> checkpoint or a Hugging Face folder.</summary>
    public required string Path { get; init; }
    /// <summary>Tokenizer file; when null, the one beside the model is used if there is one.</summary>
    public string? TokenizerPath { get; init; }
    public string Device { get; init; } = "cpu";
    public string DType { get; init; } = "float32";
}

/// <summary>A model with its tokenizer and where it came from.</summary>
public sealed class LoadedModel : IDisposable
{
    public LoadedModel(LlamaForCausalLM model, ITextTokenizer? tokenizer, string sourcePath, string format)
    {
        Model = model;
        Tokenizer = tokenizer;
        SourcePath = sourcePath;
        Format = format;
        Adapters = new LoraAdapterSet(model);
    }

    /// <summary>The model's LoRA adapters.</summary>
    public LoraAdapterSet Adapters { get; }

    /// <summary>A ladder side network beside the model, when one is attached (trained or loaded).</summary>
    public SideTuning.LadderSideNetwork? SideNetwork { get; set; }

    /// <summary>Logits of the whole model: backbone (with adapters) plus the side network if attached.</summary>
    public TorchSharp.torch.Tensor Logits(TorchSharp.torch.Tensor ids) => SideNetwork?.Forward(Model, ids) ?? Model.forward(ids);

    public LlamaForCausalLM Model { get; }
    public ITextTokenizer? Tokenizer { get; }
    public string SourcePath { get; }
    /// <summary>"llama2.c" or "huggingface".</summary>
    public string Format { get; }
    public string Name => System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(SourcePath));

    public ITextTokenizer RequireTokenizer() => Tokenizer ?? throw LoraShellException.NotFound("TokenizerRequired",
        $"Model '{SourcePath}' was loaded without a tokenizer; load it with a tokenizer path (-TokenizerPath) to work with text.", SourcePath);

    public static LoadedModel Load(ModelLoadOptions options)
    {
        string full = System.IO.Path.GetFullPath(options.Path);
        var device = DeviceSpec.ParseDevice(options.Device);
        var dtype = DeviceSpec.ParseDType(options.DType);

        LlamaForCausalLM model;
        string format;
        if (Directory.Exists(full)) { model = HuggingFaceLoader.Load(full); format = "huggingface"; }
        else if (File.Exists(full))
        {
            if (full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                throw LoraShellException.InvalidArgument("ModelPathIsSafetensorsFile",
                    $"'{full}' is a bare .safetensors file; a model needs its config.json too. Pass the folder that holds both.", full);
            if (!full.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
                throw LoraShellException.InvalidArgument("UnknownModelFormat",
                    $"'{full}' is neither a llama2.c .bin checkpoint nor a Hugging Face folder.", full);
            model = Llama2cLoader.Load(full);
            format = "llama2.c";
        }
        else throw LoraShellException.NotFound("ModelNotFound", $"Model path '{full}' does not exist; expected a llama2.c .bin file or a Hugging Face folder.", full);

        try
        {
            ITextTokenizer? tokenizer = null;
            string? tokenizerPath = options.TokenizerPath != null ? System.IO.Path.GetFullPath(options.TokenizerPath) : TokenizerLoader.FindBeside(full);
            if (tokenizerPath != null)
            {
                tokenizer = TokenizerLoader.Load(tokenizerPath);
                CheckVocabulary(tokenizer, model.Config, full);
            }
            if (dtype != ScalarType.Float32) model.to(dtype);
            if (device.type != DeviceType.CPU) model.to(device);
            model.eval();
            return new LoadedModel(model, tokenizer, full, format);
        }
        catch { model.Dispose(); throw; }
    }

    static void CheckVocabulary(ITextTokenizer tokenizer, LlamaConfig config, string modelPath)
    {
        bool exact = tokenizer is Llama2cTokenizer;
        if (tokenizer.VocabSize > config.VocabSize || (exact && tokenizer.VocabSize != config.VocabSize))
            throw LoraShellException.InvalidData("TokenizerVocabMismatch",
                $"Tokenizer '{tokenizer.Source}' has {tokenizer.VocabSize} tokens but model '{modelPath}' has vocab_size {config.VocabSize}; they do not belong together.", tokenizer.Source);
    }

    /// <summary>Writes the model (and its tokenizer file) as a Hugging Face folder.</summary>
    public DirectoryInfo SaveHuggingFace(string folder, bool overwrite)
    {
        var unmerged = Adapters.Disabled ? new List<string>() : Adapters.ActiveNames.Except(Adapters.MergedNames).ToList();
        if (unmerged.Count > 0)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "UnmergedAdapters",
                $"Adapter(s) {string.Join(", ", unmerged)} are active but not merged, so the saved weights would not include them. Merge them first (Merge-LoraWeights) or disable them.", folder);
        return Models.HuggingFaceWriter.Save(Model, folder, overwrite, TokenizerFiles());
    }

    IEnumerable<string> TokenizerFiles()
    {
        if (Tokenizer is null) yield break;
        // Copied under its own name: the HF loader finds tokenizer.model and tok*.bin files.
        yield return Tokenizer.Source;
    }

    public void Dispose()
    {
        SideNetwork?.Dispose();
        Model.Dispose();
    }
}
