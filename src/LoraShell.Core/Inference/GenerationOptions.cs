namespace LoraShell.Core.Inference;

/// <summary>How to sample. Temperature 0 means greedy (argmax).</summary>
public sealed record GenerationOptions
{
    public string Prompt { get; init; } = "";
    public int MaxTokens { get; init; } = 128;
    public double Temperature { get; init; } = 0.8;
    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches TopP.</summary>
    public double TopP { get; init; } = 0.9;
    /// <summary>Keep only the K most likely tokens before nucleus sampling (transformers' order); 0 keeps all.</summary>
    public int TopK { get; init; }
    public long? Seed { get; init; }
    /// <summary>Stop when the model emits BOS or EOS (llama2.c stories separate documents with BOS).</summary>
    public bool StopAtSpecialTokens { get; init; } = true;

    public void Validate()
    {
        if (MaxTokens < 1) throw LoraShellException.InvalidArgument("InvalidMaxTokens", $"MaxTokens must be at least 1 (got {MaxTokens}).", MaxTokens);
        if (double.IsNaN(Temperature) || Temperature < 0) throw LoraShellException.InvalidArgument("InvalidTemperature", $"Temperature must be 0 (greedy) or positive (got {Temperature}).", Temperature);
        if (TopK < 0) throw LoraShellException.InvalidArgument("InvalidTopK", $"TopK must be 0 (off) or positive (got {TopK}).", TopK);
        if (double.IsNaN(TopP) || TopP <= 0 || TopP > 1) throw LoraShellException.InvalidArgument("InvalidTopP", $"TopP must be in (0, 1] (got {TopP}).", TopP);
    }
}

/// <summary>What generation produced.</summary>
public sealed record GenerationResult(
    string Text,
    string Completion,
    IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> GeneratedTokens,
    string StopReason,
    double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? GeneratedTokens.Count / Seconds : 0;
}
