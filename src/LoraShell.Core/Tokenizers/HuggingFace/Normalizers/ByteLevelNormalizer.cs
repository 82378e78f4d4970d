using LoraShell.Core.Tokenizers.HuggingFace.Text;

namespace LoraShell.Core.Tokenizers.HuggingFace.Normalizers;

/// <summary>The ByteLevel normalizer: the same byte-to-character rewrite as the ByteLevel pre-tokenizer, without splitting.</summary>
internal sealed class ByteLevelNormalizer : INormalizer
{
    public void Normalize(NormalizedString text)
    {
        if (!text.IsEmpty) PreTokenizers.ByteLevelPreTokenizer.ToByteLevel(text);
    }
}
