using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Training;

/// <summary>One text-to-text example: the encoder's input ids and the target ids it learns to produce (both end in EOS).</summary>
public sealed record TextPair(long[] Input, long[] Target, string TargetText);

/// <summary>
/// Text-to-text data for an encoder-decoder model (T5's form): JSONL lines of {"input", "target"} (or
/// {"prompt", "completion"}), tokenized as transformers' T5 tokenizer does, <c>tokenizer(input)</c> and
/// <c>tokenizer(text_target=target)</c>: the text's tokens then EOS. Inputs and targets keep their own
/// lengths (a batch pads each to its longest); each is cut at <c>maxLength</c> tokens, EOS kept last.
/// </summary>
public sealed class TextToTextData
{
    public required IReadOnlyList<TextPair> Train { get; init; }
    public required IReadOnlyList<TextPair> Validation { get; init; }

    public static TextToTextData Load(IReadOnlyList<string> dataPaths, IReadOnlyList<string>? validationPaths, double fraction,
        ITextTokenizer tokenizer, int eosId, int maxLength, RunLog? log)
    {
        int truncated = 0;
        var train = ReadAll(dataPaths, tokenizer, eosId, maxLength, ref truncated);
        var validation = validationPaths is null ? null : ReadAll(validationPaths, tokenizer, eosId, maxLength, ref truncated);
        if (validation is null)
        {
            int held = TokenCorpus.HeldOutDocuments(train.Count, fraction);
            validation = train.GetRange(train.Count - held, held);
            train = train.GetRange(0, train.Count - held);
        }
        if (train.Count == 0)
            throw LoraShellException.InvalidData("DataTooSmall", $"No training pair is left after holding out validation data ({validation.Count} held out); give more pairs or a smaller -ValidationFraction.", dataPaths[0]);
        if (truncated > 0)
            log?.Warn($"{truncated} input or target text(s) were longer than -SequenceLength {maxLength} tokens and were cut (EOS kept last). Raise -SequenceLength to keep them whole.");
        return new TextToTextData { Train = train, Validation = validation };
    }

    static long[] Cut(long[] ids, int maxLength, ref int truncated)
    {
        if (ids.Length <= maxLength) return ids;
        truncated++;
        var cut = ids[..maxLength];
        cut[^1] = ids[^1];
        return cut;
    }

    static List<TextPair> ReadAll(IReadOnlyList<string> paths, ITextTokenizer tokenizer, int eosId, int maxLength, ref int truncated)
    {
        var pairs = new List<TextPair>();
        foreach (var file in TokenCorpus.ExpandPaths(paths))
        {
            if (!TokenCorpus.IsJsonl(file))
                throw LoraShellException.InvalidData("TextToTextNeedsPairs",
                    $"'{file}' is not a .jsonl file; an encoder-decoder model trains on pairs, one {{\"input\": …, \"target\": …}} object per line of a .jsonl file.", file);
            foreach (var record in DataRecords.Read(file, null))
            {
                if (record.Prompt is null || record.Text is null)
                    throw LoraShellException.InvalidData("TextToTextNeedsPairs",
                        $"{record.Where} is {(record.IsConversation ? "a conversation" : "a {\"text\"} record")}; an encoder-decoder model trains on {{\"input\": …, \"target\": …}} (or {{\"prompt\": …, \"completion\": …}}) pairs.", file);
                pairs.Add(new TextPair(Cut(TextToTextEncoding.Source(tokenizer, record.Prompt, eosId), maxLength, ref truncated),
                    Cut(TextToTextEncoding.Target(tokenizer, record.Text, eosId), maxLength, ref truncated), record.Text));
            }
        }
        return pairs;
    }
}
