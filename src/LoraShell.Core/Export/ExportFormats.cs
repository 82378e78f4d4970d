using LoraShell.Core.IO.Gguf;

namespace LoraShell.Core.Export;

/// <summary>What Export-LoraModel writes.</summary>
public enum ModelFileFormat
{
    /// <summary>A Hugging Face folder: config.json, model.safetensors and the tokenizer's files.</summary>
    HuggingFace,
    /// <summary>One GGUF file for llama.cpp, Ollama and LLamaSharp, tokenizer inside, with an Ollama Modelfile beside it.</summary>
    Gguf,
}

/// <summary>What Save-LoraAdapter writes.</summary>
public enum AdapterFileFormat
{
    /// <summary>A PEFT folder: adapter_config.json and adapter_model.safetensors.</summary>
    Peft,
    /// <summary>One GGUF LoRA adapter file for llama.cpp's --lora and Ollama's ADAPTER.</summary>
    Gguf,
}

/// <summary>The tensor types a GGUF export writes its matrices in (vectors stay F32).</summary>
public enum GgufTensorType
{
    F32, F16, BF16,
    /// <summary>8-bit blocks of 32 with one F16 scale: 8.5 bits per weight, close to F16's quality.</summary>
    Q8_0,
    /// <summary>4-bit blocks of 32 with one F16 scale: 4.5 bits per weight.</summary>
    Q4_0,
}

public static class ExportFormats
{
    public static GgmlType ToGgmlType(this GgufTensorType t) => t switch
    {
        GgufTensorType.F32 => GgmlType.F32,
        GgufTensorType.F16 => GgmlType.F16,
        GgufTensorType.BF16 => GgmlType.BF16,
        GgufTensorType.Q8_0 => GgmlType.Q8_0,
        _ => GgmlType.Q4_0,
    };

    /// <summary>The format a path asks for when none is named: GGUF for a .gguf file name.</summary>
    public static bool LooksLikeGguf(string path) => path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
}
