using System.Text.Encodings.Web;
using System.Text.Json;
using LoraShell.Core.Training;

namespace LoraShell.Core.Jobs;

/// <summary>The form a job's records take in TRL's SFTTrainer, which reads one form per dataset.</summary>
public enum JobRecordKind
{
    /// <summary>{"text"}: loss on every token (language modeling).</summary>
    Text,
    /// <summary>{"prompt", "completion"} strings: loss on the completion.</summary>
    PromptCompletion,
    /// <summary>{"messages"}: a conversation with loss on every token (-ChatLoss AllTokens).</summary>
    Conversation,
    /// <summary>{"prompt": [messages], "completion": [assistant message]}: one record per assistant turn, loss on that turn (-ChatLoss AssistantTurns).</summary>
    ConversationTurns,
}

/// <summary>What the data export wrote: the form, how many records went to each split, from which files.</summary>
public sealed record JobDataSummary(JobRecordKind Kind, int TrainRecords, int ValidationRecords, int TrainDocuments, int ValidationDocuments,
    IReadOnlyList<string> Files, IReadOnlyList<string> Warnings);

/// <summary>
/// Writes a run's data as the JSONL TRL reads, split into train and validation exactly as
/// <c>Start-LoraTraining</c> splits it (the same documents on each side): a text file becomes one {"text"}
/// record, JSONL records keep their form, and conversations trained on the assistant's turns become one
/// conversational prompt/completion record per assistant turn — TRL's way of putting the loss on each
/// turn with any chat template (its assistant_only_loss needs {% generation %} markers most templates lack).
/// </summary>
public static class TrainingJobData
{
    public const string TrainFile = "train.jsonl", ValidationFile = "validation.jsonl";

    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static JobDataSummary Write(TrainingOptions o, bool hasChatTemplate, string folder)
    {
        Directory.CreateDirectory(folder);
        var warnings = new List<string>();
        var files = TokenCorpus.ExpandPaths(o.DataPaths);
        var validationFiles = o.ValidationPaths is null ? null : TokenCorpus.ExpandPaths(o.ValidationPaths);
        var kinds = new KindCheck(o.ChatLoss);
        using var train = new RecordWriter(Path.Combine(folder, TrainFile), kinds, hasChatTemplate);
        using var validation = new RecordWriter(Path.Combine(folder, ValidationFile), kinds, hasChatTemplate);

        if (validationFiles is not null)
        {
            foreach (var r in files.SelectMany(f => DataRecords.Read(f, warnings.Add))) train.Add(r);
            foreach (var r in validationFiles.SelectMany(f => DataRecords.Read(f, warnings.Add))) validation.Add(r);
        }
        else if (files.Count == 1 && !TokenCorpus.IsJsonl(files[0]))
        {
            var whole = DataRecords.Read(files[0], warnings.Add).Single();
            int cut = TokenCorpus.TextCut(whole.Text!, o.ValidationFraction);
            train.Add(whole with { Text = whole.Text![..cut] });
            if (o.ValidationFraction > 0) validation.Add(whole with { Text = whole.Text![cut..] });
        }
        else
        {
            // Counted first, so a large data set streams through once more instead of sitting in memory.
            int documents = files.Sum(f => DataRecords.Read(f, null).Count());
            int held = TokenCorpus.HeldOutDocuments(documents, o.ValidationFraction), index = 0;
            foreach (var r in files.SelectMany(f => DataRecords.Read(f, warnings.Add)))
                (index++ < documents - held ? train : validation).Add(r);
        }
        if (!train.SawText)
            throw LoraShellException.InvalidData("EmptyTrainingData", $"The training data ({string.Join(", ", files.Select(Path.GetFileName))}) holds no text to learn from: only whitespace.", files[0]);
        train.Dispose();
        validation.Dispose();
        if (validation.Documents == 0) File.Delete(validation.Path);
        return new JobDataSummary(kinds.Kind!.Value, train.Records, validation.Records, train.Documents, validation.Documents,
            files.Concat(validationFiles ?? new List<string>()).ToList(), warnings.Distinct().ToList());
    }

    /// <summary>Holds the data to one record form, naming the first record of each form when they mix.</summary>
    sealed class KindCheck(ChatLoss chatLoss)
    {
        public JobRecordKind? Kind { get; private set; }
        string? _firstWhere;

        public JobRecordKind Of(DataRecord r)
        {
            var kind = r.IsConversation ? (chatLoss == ChatLoss.AssistantTurns ? JobRecordKind.ConversationTurns : JobRecordKind.Conversation)
                : r.Prompt is not null ? JobRecordKind.PromptCompletion : JobRecordKind.Text;
            if (Kind is null) { Kind = kind; _firstWhere = r.Where; }
            else if (Kind != kind)
                throw LoraShellException.InvalidData("MixedRecordKinds",
                    $"{r.Where} is a {Describe(kind)} record, but {_firstWhere} is a {Describe(Kind.Value)} record. TRL's SFTTrainer reads one form per dataset (Start-LoraTraining reads both); split the data by form and export a job per form, or rewrite the records in one form.", r.Where);
            return kind;
        }

        static string Describe(JobRecordKind kind) => kind switch
        {
            JobRecordKind.Text => "{\"text\"} (or text file)",
            JobRecordKind.PromptCompletion => "{\"prompt\", \"completion\"}",
            _ => "{\"messages\"}",
        };
    }

    sealed class RecordWriter : IDisposable
    {
        readonly FileStream _stream;
        readonly Utf8JsonWriter _json;
        readonly KindCheck _kinds;
        readonly bool _hasChatTemplate;
        bool _disposed;

        public RecordWriter(string path, KindCheck kinds, bool hasChatTemplate)
        {
            Path = path;
            _stream = File.Create(path);
            _json = new Utf8JsonWriter(_stream, WriterOptions);
            _kinds = kinds;
            _hasChatTemplate = hasChatTemplate;
        }

        public string Path { get; }
        public int Records { get; private set; }
        public int Documents { get; private set; }
        public bool SawText { get; private set; }

        public void Add(DataRecord r)
        {
            var kind = _kinds.Of(r);
            Documents++;
            switch (kind)
            {
                case JobRecordKind.Text:
                    SawText |= !string.IsNullOrWhiteSpace(r.Text);
                    Line(w => w.WriteString("text", r.Text));
                    break;
                case JobRecordKind.PromptCompletion:
                    SawText |= !string.IsNullOrWhiteSpace(r.Text) || !string.IsNullOrWhiteSpace(r.Prompt);
                    Line(w => { w.WriteString("prompt", r.Prompt); w.WriteString("completion", r.Text); });
                    break;
                default:
                    Conversation(r, kind);
                    break;
            }
        }

        void Conversation(DataRecord r, JobRecordKind kind)
        {
            if (!_hasChatTemplate)
                throw LoraShellException.InvalidData("NoChatTemplate", $"{r.Where} holds a conversation, but the model's tokenizer has no chat template to render it with.", r.Where);
            var record = r.Record!.Value;
            ChatData.ReadMessages(record, r.Where); // the same checks Start-LoraTraining makes (roles, contents, an assistant turn)
            SawText = true;
            var messages = record.GetProperty("messages").EnumerateArray().ToList();
            bool hasTools = record.TryGetProperty("tools", out var tools);
            if (kind == JobRecordKind.Conversation)
            {
                Line(w => { w.WritePropertyName("messages"); record.GetProperty("messages").WriteTo(w); if (hasTools) { w.WritePropertyName("tools"); tools.WriteTo(w); } });
                return;
            }
            for (int i = 0; i < messages.Count; i++)
            {
                if (messages[i].GetProperty("role").GetString() != "assistant") continue;
                int turn = i;
                Line(w =>
                {
                    w.WriteStartArray("prompt");
                    for (int j = 0; j < turn; j++) messages[j].WriteTo(w);
                    w.WriteEndArray();
                    w.WriteStartArray("completion");
                    messages[turn].WriteTo(w);
                    w.WriteEndArray();
                    if (hasTools) { w.WritePropertyName("tools"); tools.WriteTo(w); }
                });
            }
        }

        void Line(Action<Utf8JsonWriter> body)
        {
            _json.WriteStartObject();
            body(_json);
            _json.WriteEndObject();
            _json.Flush();
            _json.Reset();
            _stream.WriteByte((byte)'\n');
            Records++;
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _json.Dispose();
            _stream.Dispose();
        }
    }
}
