using LoraShell.Core.Models;
using LoraShell.Core.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraShell.Core.Session;

/// <summary>
/// Opens what a user points at: a Hugging Face folder or a llama2.c checkpoint, with the tokenizer
/// beside it (or the one given), on the device and in the dtype asked for.
/// </summary>
public static class ModelLoader
{
    public const string HuggingFaceFormat = "huggingface";
    public const string Llama2cFormat = "llama2.c";

    public static LoadedModel Load(ModelLoadOptions options)
    {
        string full = System.IO.Path.GetFullPath(options.Path);
        var device = DeviceSpec.ParseDevice(options.Device);
        var dtype = options.DType.ToScalarType();
        var weights = new WeightFormat { DType = dtype, Quantization = options.Quantization, DoubleQuant = options.DoubleQuant };
        weights.Validate();

        var (model, format) = ReadModel(full, weights);
        // Hand the reading and quantizing temporaries back to the OS: the allocator keeps freed pages
        // otherwise (NF4 loading of a 1B model held 0.5 GB more than the model until the next trim).
        IO.NativeMemory.Trim();
        try
        {
            ITextTokenizer? tokenizer = null;
            string? tokenizerPath = options.TokenizerPath != null ? System.IO.Path.GetFullPath(options.TokenizerPath) : TokenizerLoader.FindBeside(full);
            if (tokenizerPath != null)
            {
                tokenizer = TokenizerLoader.Load(tokenizerPath);
                CheckVocabulary(tokenizer, model.Config, full);
            }
            if (device.type != DeviceType.CPU) model.to(device);
            model.eval();
            return new LoadedModel(model, tokenizer, full, format);
        }
        catch { model.Dispose(); throw; }
    }

    static (CausalLM Model, string Format) ReadModel(string full, WeightFormat weights)
    {
        if (Directory.Exists(full)) return (HuggingFaceLoader.Load(full, weights), HuggingFaceFormat);
        if (!File.Exists(full))
            throw LoraShellException.NotFound("ModelNotFound", $"Model path '{full}' does not exist; expected a llama2.c .bin file or a Hugging Face folder.", full);
        if (full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw LoraShellException.InvalidArgument("ModelPathIsSafetensorsFile",
                $"'{full}' is a bare .safetensors file; a model needs its config.json too. Pass the folder that holds both.", full);
        if (!full.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            throw LoraShellException.InvalidArgument("UnknownModelFormat",
                $"'{full}' is neither a llama2.c .bin checkpoint nor a Hugging Face folder.", full);
        return (Llama2cLoader.Load(full, weights), Llama2cFormat);
    }

    static void CheckVocabulary(ITextTokenizer tokenizer, ModelConfig config, string modelPath)
    {
        // HF models often pad the embedding past the tokenizer (Qwen: 151,936 rows for 151,669 tokens); llama2.c's are equal.
        bool exact = tokenizer is Llama2cTokenizer;
        if (tokenizer.VocabSize > config.VocabSize || (exact && tokenizer.VocabSize != config.VocabSize))
            throw LoraShellException.InvalidData("TokenizerVocabMismatch",
                $"Tokenizer '{tokenizer.Source}' has {tokenizer.VocabSize} tokens but model '{modelPath}' has vocab_size {config.VocabSize}; they do not belong together.", tokenizer.Source);
    }
}
