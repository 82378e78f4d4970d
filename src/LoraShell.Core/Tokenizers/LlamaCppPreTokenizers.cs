namespace LoraShell.Core.Tokenizers;

/// <summary>
/// The byte-level BPE pre-tokenizers llama.cpp implements, by the name a GGUF file gives them
/// (<c>tokenizer.ggml.pre</c>), with the tokenizer.json split pattern each stands for. GPT-2's is the
/// ByteLevel pre-tokenizer's own regex (<see cref="Gpt2"/>), not a Split.
/// </summary>
public static class LlamaCppPreTokenizers
{
    public const string Gpt2 = "gpt-2";

    public static readonly IReadOnlyList<(string Name, string Pattern)> SplitPatterns = new[]
    {
        ("qwen2", @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
        ("llama-bpe", @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    };

    /// <summary>Every name LoraShell maps, for messages.</summary>
    public static IEnumerable<string> Names => SplitPatterns.Select(p => p.Name).Append(Gpt2);

    public static string? NameOf(string pattern) => SplitPatterns.FirstOrDefault(p => p.Pattern == pattern).Name;

    public static string? PatternOf(string name) => SplitPatterns.FirstOrDefault(p => p.Name == name).Pattern;
}
