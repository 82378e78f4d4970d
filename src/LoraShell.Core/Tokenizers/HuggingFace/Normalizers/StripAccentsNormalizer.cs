using LoraShell.Core.Tokenizers.HuggingFace.Normalization;
using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

/// <summary>Removes combining marks (Unicode 9.0 General_Category=Mark), usually after NFD/NFKD.</summary>
internal sealed class StripAccentsNormalizer : INormalizer
{
    public void Normalize(NormalizedString text) => text.Filter(cp => !UnicodeNormalization.IsMark(cp));
}
