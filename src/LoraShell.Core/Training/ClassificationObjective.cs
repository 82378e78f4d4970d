using System.Text.Json;
using LoraShell.Core.IO;
using LoraShell.Core.Models;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// Sentence classification with the same methods, optimizer and schedule as language modelling: a
/// <see cref="ClassificationHead"/> reads the final hidden state of each sentence's last token (for
/// Ladder, the backbone's plus the side network's), trains with the method's parameters, and is judged
/// by validation accuracy. Batches are seeded draws without replacement, reshuffled every epoch.
/// </summary>
internal sealed class ClassificationObjective : TrainingObjective
{
    public const string ClassifierFolder = "classifier";
    const string WeightsFile = "score.safetensors", LabelsFile = "labels.json";

    readonly ClassificationData _data;
    readonly IReadOnlyList<LabeledSequence> _validation;
    readonly int _batchSize;
    ExampleShuffler? _order;
    ClassificationHead? _head;
    Func<Tensor, Tensor>? _hidden;
    Device _device = CPU;

    public ClassificationObjective(TrainingOptions o, ITextTokenizer tokenizer)
    {
        _data = ClassificationData.Load(o.DataPaths, o.ValidationPaths, o.ValidationFraction, tokenizer, o.SequenceLength);
        _validation = o.MaxEvalWindows > 0 ? _data.Validation.Take(o.MaxEvalWindows).ToList() : _data.Validation.ToList();
        _batchSize = o.BatchSize;
    }

    public override TrainingTask Task => TrainingTask.Classification;
    public override long EpochSize => _data.Train.Count;
    public override bool HasValidation => true; // NaN loss and accuracy when there are no validation sentences
    public override string EvaluationSize => _validation.Count < _data.Validation.Count
        ? $"{_validation.Count:N0} of {_data.Validation.Count:N0} sentences" : $"all {_data.Validation.Count:N0} sentences";
    public override TokenStream FisherData => TokenStream.Concat(_data.Train.Take(4096).Select(e => new TokenStream(e.Tokens, Enumerable.Repeat(true, e.Tokens.Length).ToArray())));
    public override IReadOnlyList<string> Labels => _data.Labels;
    public override string Fingerprint => $"{Task}:{string.Join("\u001f", _data.Labels)}";
    public override IReadOnlyList<(string name, Parameter parameter)> Parameters
        => _head!.named_parameters().Select(p => (name: $"head.{p.name}", parameter: p.parameter)).ToList();

    public override void Bind(IAdaptableModel network, Tuner tuner, long seed, RunLog? log)
    {
        var model = (CausalLM)network; // TrainingRun gives an encoder-decoder the text-to-text objective
        manual_seed(seed);
        _head = new ClassificationHead(model.Config.HiddenSize, _data.Labels.Count);
        _head.to(model.Device);
        _device = model.Device;
        _hidden = ids => tuner.HiddenStates(ids);
        _order = new ExampleShuffler(_data.Train.Count, seed);
        log?.Info($"Data: {_data.Train.Count:N0} training and {_validation.Count:N0} validation sentences, labels {string.Join(", ", _data.Labels)}.");
    }

    public override (double Loss, long Tokens)? Step(long firstDraw, int batchSize, double scale)
    {
        var batch = _order!.Take(firstDraw, batchSize).Select(i => _data.Train[i]).ToList();
        var (ids, lengths, labels) = Collate(batch, _device);
        var loss = nn.functional.cross_entropy(_head!.call(_hidden!(ids), lengths).to(ScalarType.Float32), labels);
        (loss * scale).backward();
        return (loss.item<float>(), batch.Sum(e => (long)e.Tokens.Length));
    }

    public override EvalRecord Evaluate(int step, Action<double>? done = null)
    {
        var (loss, accuracy) = Evaluate(_hidden!, _head!, _validation, _batchSize, _device, done);
        return new EvalRecord(step, loss, accuracy);
    }

    public override void SetTraining(bool training) { if (training) _head!.train(); else _head!.eval(); }

    /// <summary>Writes <c>classifier/score.safetensors</c> (HF's <c>score.weight</c>) and <c>classifier/labels.json</c>.</summary>
    public override string? Save(string folder)
    {
        string path = Path.Combine(folder, ClassifierFolder);
        Directory.CreateDirectory(path);
        SafetensorsWriter.Write(Path.Combine(path, WeightsFile), new[] { KeyValuePair.Create("score.weight", _head!.score.weight!.detach()) });
        AtomicFile.WriteAllText(Path.Combine(path, LabelsFile), JsonSerializer.Serialize(new { labels = _data.Labels, pooling = "last_token" }));
        return path;
    }

    public override void Restore(string folder)
    {
        string path = Path.Combine(folder, ClassifierFolder, WeightsFile);
        if (!File.Exists(path))
            throw LoraShellException.InvalidData("CheckpointMismatch", $"Checkpoint '{folder}' holds no classification head ({Path.Combine(ClassifierFolder, WeightsFile)}); it was not written by classification training.", folder);
        using var file = SafetensorsFile.Open(path);
        using var weight = file.ReadTensor("score.weight");
        if (!weight.shape.SequenceEqual(_head!.score.weight!.shape))
            throw LoraShellException.InvalidData("CheckpointMismatch", $"The classification head in '{path}' has shape [{string.Join(", ", weight.shape)}]; this run needs [{string.Join(", ", _head.score.weight!.shape)}].", path);
        using var _ = no_grad();
        _head.score.weight!.copy_(weight);
    }

    public override void Dispose() => _head?.Dispose();

    /// <summary>Right-padded token ids [batch, longest], lengths [batch] and labels [batch].</summary>
    public static (Tensor Ids, Tensor Lengths, Tensor Labels) Collate(IReadOnlyList<LabeledSequence> batch, Device device)
    {
        int longest = batch.Max(e => e.Tokens.Length);
        var ids = new long[batch.Count * longest];
        for (int b = 0; b < batch.Count; b++)
            for (int t = 0; t < batch[b].Tokens.Length; t++) ids[b * longest + t] = batch[b].Tokens[t];
        return (tensor(ids, new long[] { batch.Count, longest }).to(device),
            tensor(batch.Select(e => (long)e.Tokens.Length).ToArray()).to(device),
            tensor(batch.Select(e => (long)e.Label).ToArray()).to(device));
    }

    /// <summary>Mean cross-entropy and accuracy over the examples; NaN for both without any.</summary>
    public static (double Loss, double Accuracy) Evaluate(Func<Tensor, Tensor> hidden, ClassificationHead head, IReadOnlyList<LabeledSequence> examples, int batchSize, Device device, Action<double>? done = null)
    {
        if (examples.Count == 0) return (double.NaN, double.NaN);
        double lossSum = 0;
        long correct = 0;
        using var _ = no_grad();
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = examples.Skip(start).Take(batchSize).ToList();
            var (ids, lengths, labels) = Collate(batch, device);
            var logits = head.call(hidden(ids), lengths).to(ScalarType.Float32);
            lossSum += nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(labels).sum().item<long>();
            done?.Invoke(Math.Min(1.0, (double)(start + batch.Count) / examples.Count));
        }
        return (lossSum / examples.Count, correct / (double)examples.Count);
    }
}
