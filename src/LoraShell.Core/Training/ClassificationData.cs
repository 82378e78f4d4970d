using System.Globalization;
using LoraShell.Core.Tokenizers;

namespace LoraShell.Core.Training;

/// <summary>One tokenized example: BOS + the sentence's tokens (cut to the sequence length) and its class index.</summary>
public sealed record LabeledSequence(int[] Tokens, int Label);

/// <summary>
/// Sentence classification data from TSV files, one <c>sentence&lt;TAB&gt;label</c> per line (GLUE's SST-2
/// layout); a header line whose label column is not a label (e.g. "label") is skipped. Labels are the
/// distinct label strings, sorted numerically when all are integers, else ordinally.
/// </summary>
public sealed class ClassificationData
{
    public required IReadOnlyList<LabeledSequence> Train { get; init; }
    public required IReadOnlyList<LabeledSequence> Validation { get; init; }
    public required IReadOnlyList<string> Labels { get; init; }

    public static bool IsClassificationFile(string path) => path.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase);

    public static ClassificationData Load(IReadOnlyList<string> dataPaths, IReadOnlyList<string>? validationPaths, double fraction,
        ITextTokenizer tokenizer, int maxLength)
    {
        var train = ReadAll(TokenCorpus.ExpandPaths(dataPaths));
        var validation = validationPaths is null ? null : ReadAll(TokenCorpus.ExpandPaths(validationPaths));
        if (validation is null)
        {
            // Hold out the last part, as language-model data does.
            int held = (int)Math.Round(train.Count * fraction);
            validation = train.GetRange(train.Count - held, held);
            train = train.GetRange(0, train.Count - held);
        }
        var labels = train.Concat(validation).Select(r => r.Label).Distinct().ToList();
        labels = labels.All(l => long.TryParse(l, NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
            ? labels.OrderBy(l => long.Parse(l, CultureInfo.InvariantCulture)).ToList()
            : labels.OrderBy(l => l, StringComparer.Ordinal).ToList();
        if (labels.Count < 2)
            throw LoraShellException.InvalidData("TooFewLabels", $"Classification data needs at least two distinct labels; '{dataPaths[0]}' has {labels.Count} ({string.Join(", ", labels)}).", dataPaths[0]);
        if (train.Count == 0)
            throw LoraShellException.InvalidData("DataTooSmall", "No training examples are left after holding out validation data.", dataPaths[0]);
        var index = labels.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => p.i, StringComparer.Ordinal);
        LabeledSequence Encode((string Sentence, string Label) r)
        {
            // As tokenizer(sentence) in transformers: the tokenizer's own special tokens (llama2.c: BOS first).
            var ids = tokenizer.EncodeWithSpecialTokens(r.Sentence.Trim());
            if (ids.Count == 0)
                throw LoraShellException.InvalidData("EmptySentence", $"A sentence labelled '{r.Label}' encodes to no tokens (it is empty and the tokenizer adds no BOS); remove it from the data.", r.Sentence);
            return new LabeledSequence(ids.Take(maxLength).ToArray(), index[r.Label]);
        }
        return new ClassificationData { Train = train.Select(Encode).ToList(), Validation = validation.Select(Encode).ToList(), Labels = labels };
    }

    static List<(string Sentence, string Label)> ReadAll(List<string> files)
    {
        var rows = new List<(string, string)>();
        foreach (var file in files)
        {
            if (!IsClassificationFile(file))
                throw LoraShellException.InvalidData("MixedTaskData", $"'{file}' is not a .tsv file; classification data is sentence<TAB>label lines in .tsv files.", file);
            int lineNumber = 0;
            foreach (var line in File.ReadLines(file))
            {
                lineNumber++;
                if (line.Length == 0) continue;
                int tab = line.LastIndexOf('\t');
                if (tab < 0)
                    throw LoraShellException.InvalidData("InvalidClassificationLine", $"{file}:{lineNumber}: expected 'sentence<TAB>label', found no tab in \"{Shorten(line)}\".", file);
                string sentence = line[..tab], label = line[(tab + 1)..].Trim();
                if (lineNumber == 1 && label.Equals("label", StringComparison.OrdinalIgnoreCase)) continue; // header
                if (label.Length == 0)
                    throw LoraShellException.InvalidData("InvalidClassificationLine", $"{file}:{lineNumber}: the label after the tab is empty.", file);
                if (line.Contains('\0'))
                    throw LoraShellException.InvalidData("DataNotText", $"{file}:{lineNumber}: the line holds a NUL character; the file looks binary, not sentence<TAB>label text.", file);
                rows.Add((sentence, label));
            }
        }
        if (rows.Count > 0 && rows.All(r => string.IsNullOrWhiteSpace(r.Item1)))
            throw LoraShellException.InvalidData("EmptySentences", $"Every sentence in {string.Join(", ", files.Select(Path.GetFileName))} is empty; there is nothing to classify.", files[0]);
        return rows;
    }

    static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";
}
