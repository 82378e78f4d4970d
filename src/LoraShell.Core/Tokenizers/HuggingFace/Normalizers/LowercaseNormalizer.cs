using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

internal sealed class LowercaseNormalizer : INormalizer
{
    public void Normalize(NormalizedString text) => text.Lowercase();
}
