using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

/// <summary>Replaces every match of a literal or regex pattern with <c>content</c>.</summary>
internal sealed class ReplaceNormalizer(SplitPattern pattern, string content) : INormalizer
{
    public void Normalize(NormalizedString text) => text.Replace(pattern, content);
}
