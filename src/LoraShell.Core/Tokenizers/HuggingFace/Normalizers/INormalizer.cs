using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

/// <summary>A tokenizer.json <c>normalizer</c>: edits a piece of text in place, keeping alignments.</summary>
internal interface INormalizer
{
    void Normalize(NormalizedString text);
}
