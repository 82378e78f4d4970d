namespace LoraShell.Core.Tokenizers;

/// <summary>
/// How an encoder-decoder's texts become ids, as transformers' T5 tokenizer does: <c>tokenizer(input)</c>
/// and <c>tokenizer(text_target=target)</c> are the text's tokens then EOS. The one rule training, scoring
/// and generation share.
/// </summary>
public static class TextToTextEncoding
{
    /// <summary>tokenizer(text): its tokens with the tokenizer's own special tokens, then EOS unless its post-processor added it.</summary>
    public static long[] Source(ITextTokenizer tokenizer, string text, int eosId) => WithEos(tokenizer.EncodeWithSpecialTokens(text), eosId);

    /// <summary>tokenizer(text_target=text): the text's tokens, then EOS.</summary>
    public static long[] Target(ITextTokenizer tokenizer, string text, int eosId) => WithEos(tokenizer.Encode(text), eosId);

    static long[] WithEos(IReadOnlyList<int> ids, int eosId)
        => ids.Count > 0 && ids[^1] == eosId ? ids.Select(i => (long)i).ToArray() : ids.Select(i => (long)i).Append(eosId).ToArray();
}
