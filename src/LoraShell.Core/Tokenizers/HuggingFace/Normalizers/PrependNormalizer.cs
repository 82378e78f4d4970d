using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

/// <summary>Prepends a string to every non-empty piece (Llama/Mistral legacy layout: "▁").</summary>
internal sealed class PrependNormalizer(string prefix) : INormalizer
{
    public void Normalize(NormalizedString text)
    {
        if (!text.IsEmpty) text.Prepend(prefix);
    }
}
