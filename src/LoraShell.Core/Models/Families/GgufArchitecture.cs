namespace LoraShell.Core.Models.Families;

/// <summary>
/// What a family is to llama.cpp: its architecture name (the prefix of its metadata keys) and how its
/// rotary embedding pairs dimensions. llama.cpp's <c>llama</c> architecture (Llama and Mistral) rotates
/// adjacent pairs, as Meta's original code did, so HF's rotate-half q/k rows are permuted back on
/// export (and forward again on import), as llama.cpp's converter does; the NeoX-style families
/// (Qwen2, Qwen3, Phi-3) rotate halves like HF and keep their rows; GPT-2 has no rotary embedding.
/// </summary>
public sealed record GgufArchitecture(string Name, bool InterleavedRope)
{
    public static readonly GgufArchitecture Llama = new("llama", InterleavedRope: true);
}
