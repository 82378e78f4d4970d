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
    public const string GgufFormat = "gguf";

    public static LoadedModel Load(ModelLoadOptions options)
    {
        string full = System.IO.Path.GetFullPath(options.Path);
        var device = DeviceSpec.ParseDevice(options.Device);
        var dtype = options.DType.ToScalarType();
        var weights = new WeightFormat { DType = dtype, Quantization = options.Quantization, DoubleQuant = options.DoubleQuant };
        weights.Validate();

        var warnings = new List<string>();
        if (Directory.Exists(full) && Models.T5.T5Loader.IsT5Folder(full)) return LoadEncoderDecoder(full, options, weights, device, warnings);
        var (model, format, embedded) = ReadModel(full, weights, warnings.Add);
        // Hand the reading and quantizing temporaries back to the OS: the allocator keeps freed pages
        // otherwise (NF4 loading of a 1B model held 0.5 GB more than the model until the next trim).
        IO.NativeMemory.Trim();
        try
        {
            var tokenizer = Tokenizer(options, full, embedded, lookBeside: format != GgufFormat, model.Config.VocabSize);
            if (device.type != DeviceType.CPU) model.to(device);
            model.eval();
            string? hubId = model.Config.Source?["_name_or_path"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var id)
                && id.Length > 0 && !System.IO.Path.IsPathRooted(id) && !id.StartsWith('.') ? id : null;
            return new LoadedModel(model, tokenizer, full, format) { NameOrPath = hubId ?? options.NameOrPath ?? options.Path, LoadWarnings = warnings };
        }
        catch { model.Dispose(); throw; }
    }

    /// <summary>A T5 folder: float weights (quantized T5 bases are not supported yet), its tokenizer beside it or given.</summary>
    static LoadedModel LoadEncoderDecoder(string full, ModelLoadOptions options, WeightFormat weights, Device device, List<string> warnings)
    {
        if (weights.Quantization != Models.Quantization.BaseQuantization.None)
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "NotSupportedForT5",
                $"'{full}' is a T5 model; -Quantization {weights.Quantization} is for decoder-only models so far. Import it without -Quantization.", full);
        var model = Models.T5.T5Loader.Load(full, warnings.Add);
        try
        {
            if (weights.DType != ScalarType.Float32) model.to(weights.DType);
            var tokenizer = Tokenizer(options, full, embedded: null, lookBeside: true, model.Config.VocabSize);
            if (device.type != DeviceType.CPU) model.to(device);
            model.eval();
            return new LoadedModel(model, tokenizer, full, HuggingFaceFormat) { NameOrPath = options.NameOrPath ?? options.Path, LoadWarnings = warnings };
        }
        catch { model.Dispose(); throw; }
    }

    /// <summary>
    /// The model's tokenizer: -TokenizerPath wins; else the one its file carries (GGUF) or the one beside it;
    /// checked against the embedding's rows.
    /// </summary>
    static ITextTokenizer? Tokenizer(ModelLoadOptions options, string full, ITextTokenizer? embedded, bool lookBeside, int vocabSize)
    {
        string? path = options.TokenizerPath != null ? System.IO.Path.GetFullPath(options.TokenizerPath) : lookBeside ? TokenizerLoader.FindBeside(full) : null;
        var tokenizer = path != null ? TokenizerLoader.Load(path) : embedded;
        if (tokenizer != null) CheckVocabulary(tokenizer, vocabSize, full);
        return tokenizer;
    }

    static (CausalLM Model, string Format, ITextTokenizer? Tokenizer) ReadModel(string full, WeightFormat weights, Action<string> warn)
    {
        if (Directory.Exists(full)) return (HuggingFaceLoader.Load(full, weights, warn), HuggingFaceFormat, null);
        if (!File.Exists(full))
            throw LoraShellException.NotFound("ModelNotFound", $"Model path '{full}' does not exist; expected a llama2.c .bin file, a GGUF file or a Hugging Face folder.", full);
        // By content, not name: Ollama's model store keeps GGUF files as sha256-… blobs without an extension.
        if (IO.Gguf.GgufFile.HasMagic(full))
        {
            var (gguf, tokenizer) = GgufLoader.Load(full, weights);
            return (gguf, GgufFormat, tokenizer);
        }
        if (full.EndsWith(GgufLoader.Extension, StringComparison.OrdinalIgnoreCase))
            throw LoraShellException.InvalidData("InvalidGguf", $"'{full}' is named .gguf but does not start with the GGUF magic; the file is damaged or not a GGUF file.", full);
        if (full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw LoraShellException.InvalidArgument("ModelPathIsSafetensorsFile",
                $"'{full}' is a bare .safetensors file; a model needs its config.json too. Pass the folder that holds both.", full);
        if (!full.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            throw LoraShellException.InvalidArgument("UnknownModelFormat",
                $"'{full}' is neither a llama2.c .bin checkpoint, a GGUF file nor a Hugging Face folder.", full);
        try { return (Llama2cLoader.Load(full, weights), Llama2cFormat, null); }
        catch (LoraShellException e) when (e.ErrorId == "InvalidLlama2cCheckpoint" && IsLlama2cTokenizer(full))
        {
            throw LoraShellException.InvalidArgument("PathIsATokenizer",
                $"'{full}' is a llama2.c tokenizer file, not a model checkpoint. Load the model's .bin and pass this file as -TokenizerPath (a tok*.bin beside the model is found by itself).", full);
        }
    }

    /// <summary>Whether a file reads as a llama2.c tokenizer (tok*.bin sits beside the checkpoints and globs pick it up).</summary>
    static bool IsLlama2cTokenizer(string path)
    {
        try { Llama2cTokenizer.Load(path); return true; }
        catch (LoraShellException) { return false; }
    }

    static void CheckVocabulary(ITextTokenizer tokenizer, int vocabSize, string modelPath)
    {
        // HF models often pad the embedding past the tokenizer (Qwen: 151,936 rows for 151,669 tokens); llama2.c's are equal.
        bool exact = tokenizer is Llama2cTokenizer;
        if (tokenizer.VocabSize > vocabSize || (exact && tokenizer.VocabSize != vocabSize))
            throw LoraShellException.InvalidData("TokenizerVocabMismatch",
                $"Tokenizer '{tokenizer.Source}' has {tokenizer.VocabSize} tokens but model '{modelPath}' has vocab_size {vocabSize}; they do not belong together.", tokenizer.Source);
        // The ids a tokenizer adds by itself (its post-processor's BOS/EOS, the ids generation stops at) must be
        // rows of the embedding too, or the first forward pass fails deep in libtorch.
        var added = tokenizer.EncodeWithSpecialTokens("a").Concat(tokenizer.StopIds).Concat(new[] { tokenizer.BosId, tokenizer.EosId }.OfType<int>());
        if (added.Where(id => id < 0 || id >= vocabSize).Select(id => (int?)id).FirstOrDefault() is int outside)
            throw LoraShellException.InvalidData("TokenizerVocabMismatch",
                $"Tokenizer '{tokenizer.Source}' adds token id {outside} by itself (a special token of its post-processor or a stop id), but model '{modelPath}' has only {vocabSize} embedding rows (ids 0..{vocabSize - 1}); they do not belong together.", tokenizer.Source);
    }
}
