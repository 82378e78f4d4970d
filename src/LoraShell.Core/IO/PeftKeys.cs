namespace LoraShell.Core.IO;

/// <summary>
/// PEFT's key vocabulary, in one place: the names a LoRA layer gives its parts in a module's state dict
/// (<c>base_layer</c>, <c>lora_A.NAME</c>, <c>lora_B.NAME</c>, <c>lora_magnitude_vector.NAME</c>) and the
/// keys an adapter file stores them under (<c>base_model.model.PATH.lora_A.weight</c>, no adapter name;
/// DoRA's magnitude without its <c>.weight</c>, as PEFT's get_peft_model_state_dict strips it).
/// </summary>
public static class PeftKeys
{
    public const string FilePrefix = "base_model.model.";
    public const string BaseLayer = "base_layer";
    public const string LoraA = "lora_A";
    public const string LoraB = "lora_B";
    public const string Magnitude = "lora_magnitude_vector";
    public const string EmbeddingA = "lora_embedding_A";
    public const string EmbeddingB = "lora_embedding_B";
    /// <summary>PEFT's TrainableTokensWrapper submodule, whose <c>trainable_tokens_delta.NAME</c> holds an adapter's token rows.</summary>
    public const string TokenAdapter = "token_adapter";
    public const string TokenRows = "trainable_tokens_delta";

    public static string LoraAKey(string modulePath) => $"{FilePrefix}{modulePath}.{LoraA}.weight";
    public static string LoraBKey(string modulePath) => $"{FilePrefix}{modulePath}.{LoraB}.weight";
    /// <summary>DoRA's magnitude [out]; PEFT saves it without <c>.weight</c> and loads either spelling.</summary>
    public static string MagnitudeKey(string modulePath) => $"{FilePrefix}{modulePath}.{Magnitude}";
    public static string MagnitudeKeyWithWeight(string modulePath) => MagnitudeKey(modulePath) + ".weight";
    /// <summary>LoRA on an embedding: A [r, num_embeddings] and B [dim, r], saved without <c>.weight</c> (PEFT's ParameterDict entries).</summary>
    public static string EmbeddingAKey(string modulePath) => $"{FilePrefix}{modulePath}.{EmbeddingA}";
    public static string EmbeddingBKey(string modulePath) => $"{FilePrefix}{modulePath}.{EmbeddingB}";
    /// <summary>trainable_token_indices: the trained rows [n, dim], saved without <c>.weight</c> (a ParameterDict entry).</summary>
    public static string TokenRowsKey(string modulePath) => $"{FilePrefix}{modulePath}.{TokenAdapter}.{TokenRows}";
    /// <summary>The key of a plain parameter saved with the adapter (a bias, a modules_to_save weight).</summary>
    public static string ParameterKey(string parameterPath) => FilePrefix + parameterPath;

    /// <summary>An adapter file's key for a low-rank factor (A or B).</summary>
    public static bool IsFactorKey(string key)
        => key.EndsWith($".{LoraA}.weight", StringComparison.Ordinal) || key.EndsWith($".{LoraB}.weight", StringComparison.Ordinal);

    /// <summary>An adapter file's key that a LoRA layer holds (a factor, a DoRA magnitude), in either spelling.</summary>
    public static bool IsLayerKey(string key)
        => key.Contains($".{LoraA}.", StringComparison.Ordinal) || key.Contains($".{LoraB}.", StringComparison.Ordinal)
           || key.EndsWith($".{Magnitude}", StringComparison.Ordinal) || key.Contains($".{Magnitude}.", StringComparison.Ordinal)
           || key.Contains($".{EmbeddingA}", StringComparison.Ordinal) || key.Contains($".{EmbeddingB}", StringComparison.Ordinal)
           || key.Contains($".{TokenAdapter}.", StringComparison.Ordinal);

    /// <summary>A module state-dict name that belongs to an adapter rather than to the base model.</summary>
    public static bool IsAdapterStateName(string name)
        => name.Contains($".{LoraA}.", StringComparison.Ordinal) || name.Contains($".{LoraB}.", StringComparison.Ordinal)
           || name.Contains($".{Magnitude}.", StringComparison.Ordinal)
           || name.Contains($".{EmbeddingA}.", StringComparison.Ordinal) || name.Contains($".{EmbeddingB}.", StringComparison.Ordinal)
           || name.Contains($".{TokenAdapter}.", StringComparison.Ordinal);

    /// <summary>A wrapped layer's base parameter under the name the unwrapped model has (<c>PATH.base_layer.weight</c> is <c>PATH.weight</c>).</summary>
    public static string WithoutBaseLayer(string name) => name.Replace($".{BaseLayer}.", ".", StringComparison.Ordinal);
}
