using LoraShell.Core.Tokenizers.HuggingFace.Normalization;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

/// <summary>NFC, NFD, NFKC, NFKD (Unicode 9.0, like the crate), with the crate's alignment behaviour.</summary>
internal sealed class UnicodeNormalizer(NormalizationForm form) : INormalizer
{
    public void Normalize(NormalizedString text)
    {
        var changes = UnicodeNormalization.Compute(text.Normalized, form);
        if (changes is not null) text.ApplyTransform(changes, 0);
    }
}
