using LoraShell.Core.Models;
using LoraShell.Core.Models.T5;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training.Tuners;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// Text-to-text training of an encoder-decoder (T5's objective): the encoder reads the input, the decoder
/// reads the target shifted right behind decoder_start_token_id, and the loss is the mean cross-entropy
/// over the target's tokens (padding ignored, as labels of -100 in transformers). Batches are seeded draws
/// without replacement; each batch pads inputs and targets to their own longest. When the targets are a
/// small set of strings (classification as text, e.g. SST-2's "positive"/"negative"), validation also
/// reports accuracy by generation, as the T5 paper scores it: greedy decoding must produce the target exactly.
/// </summary>
internal sealed class TextToTextObjective : TrainingObjective
{
    /// <summary>At most this many distinct targets make the task a classification scored by accuracy.</summary>
    public const int MaxLabelTargets = 16;
    const long IgnoreIndex = -100;

    readonly TextToTextData _data;
    readonly IReadOnlyList<TextPair> _validation;
    readonly IReadOnlyList<string>? _labels;
    readonly int _batchSize;
    T5ForConditionalGeneration? _model;
    SideTuning.EncoderDecoderPass? _pass;
    ExampleShuffler? _order;

    public TextToTextObjective(TrainingOptions o, ITextTokenizer tokenizer, T5Config config, RunLog? log)
    {
        _data = TextToTextData.Load(o.DataPaths, o.ValidationPaths, o.ValidationFraction, tokenizer, config.EosTokenId, o.SequenceLength, log);
        _validation = o.MaxEvalWindows > 0 ? _data.Validation.Take(o.MaxEvalWindows).ToList() : _data.Validation;
        var targets = _data.Train.Concat(_data.Validation).Select(p => p.TargetText).Distinct(StringComparer.Ordinal).ToList();
        _labels = targets.Count <= MaxLabelTargets ? targets.OrderBy(t => t, StringComparer.Ordinal).ToList() : null;
        _batchSize = o.BatchSize;
    }

    public override TrainingTask Task => TrainingTask.TextToText;
    public override long EpochSize => _data.Train.Count;
    public override bool HasValidation => _validation.Count > 0;
    public override string EvaluationSize => _validation.Count < _data.Validation.Count
        ? $"{_validation.Count:N0} of {_data.Validation.Count:N0} pairs" : $"all {_data.Validation.Count:N0} pairs";
    public override TokenStream FisherData => throw new NotSupportedException("Fisher pruning of a T5 side network reads text-to-text batches (BackboneLoss).");
    public override IReadOnlyList<string>? Labels => _labels;
    public override string Fingerprint => $"{Task}:{string.Join("\u001f", _labels ?? Array.Empty<string>())}";

    public override void Bind(IAdaptableModel model, Tuner tuner, long seed, RunLog? log)
    {
        _model = (T5ForConditionalGeneration)model;
        _pass = tuner.EncoderDecoderPass;
        _order = new ExampleShuffler(_data.Train.Count, seed);
        log?.Info($"Data: {_data.Train.Count:N0} training and {_data.Validation.Count:N0} validation pairs"
            + (_labels is null ? "." : $"; {_labels.Count} distinct targets ({string.Join(", ", _labels.Take(4))}{(_labels.Count > 4 ? ", …" : "")}), so validation also scores accuracy by generation."));
    }

    public override (double Loss, long Tokens)? Step(long firstDraw, int batchSize, double scale)
    {
        var model = _model!;
        var batch = _order!.Take(firstDraw, batchSize).Select(i => _data.Train[i]).ToList();
        var (inputs, mask, labels) = Collate(batch, model.Config.PadTokenId, Device);
        var loss = _pass!.TargetLoss(_pass.Encode(inputs, mask), labels);
        (loss * scale).backward();
        return (loss.item<float>(), batch.Sum(p => (long)p.Input.Length + p.Target.Length));
    }

    /// <summary>The backbone's own loss on training batch <paramref name="index"/> (Fisher information for a side network's pruning).</summary>
    public Tensor BackboneLoss(T5ForConditionalGeneration model, int index, int batchSize)
    {
        var batch = Enumerable.Range(index * batchSize, batchSize).Select(i => _data.Train[i % _data.Train.Count]).ToList();
        var (inputs, mask, labels) = Collate(batch, model.Config.PadTokenId, model.shared.weight!.device);
        return model.LogitsAndLoss(inputs, labels, mask).Loss;
    }

    Device Device => _model!.shared.weight!.device;

    public override EvalRecord Evaluate(int step, Action<double>? done = null)
    {
        var model = _model!;
        double lossSum = 0;
        long tokens = 0, correct = 0;
        using var _ = no_grad();
        for (int start = 0; start < _validation.Count; start += _batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = _validation.Skip(start).Take(_batchSize).ToList();
            var (inputs, mask, labels) = Collate(batch, model.Config.PadTokenId, Device);
            var encoding = _pass!.Encode(inputs, mask); // once, for the loss and the generation
            lossSum += _pass.TargetLoss(encoding, labels, nn.Reduction.Sum).item<float>();
            tokens += batch.Sum(p => (long)p.Target.Length);
            if (_labels is not null) correct += CountExactGenerations(encoding, batch);
            done?.Invoke(Math.Min(1.0, (double)(start + batch.Count) / _validation.Count));
        }
        if (tokens == 0) return new EvalRecord(step, double.NaN);
        return new EvalRecord(step, lossSum / tokens, _labels is null ? null : correct / (double)_validation.Count);
    }

    /// <summary>
    /// Greedy decoding of the batch (the encoder once, the decoder over the tokens so far each step: targets are a
    /// few tokens) and how many rows produce their target exactly, EOS included.
    /// </summary>
    long CountExactGenerations(T5Encoding encoding, IReadOnlyList<TextPair> batch)
    {
        var model = _model!;
        int longest = batch.Max(p => p.Target.Length);
        var decoded = full(batch.Count, 1, (long)model.Config.DecoderStartTokenId, dtype: ScalarType.Int64, device: Device);
        for (int t = 0; t < longest; t++)
        {
            var hidden = _pass!.DecoderHidden(decoded, encoding);
            var next = model.Head(hidden.narrow(1, hidden.shape[1] - 1, 1)).argmax(-1);
            decoded = cat(new[] { decoded, next }, 1);
        }
        var rows = decoded.cpu().data<long>().ToArray();
        long correct = 0;
        for (int b = 0; b < batch.Count; b++)
        {
            var target = batch[b].Target;
            bool same = true;
            for (int t = 0; t < target.Length && same; t++) same = rows[b * (longest + 1) + 1 + t] == target[t];
            if (same) correct++;
        }
        return correct;
    }

    /// <summary>Inputs [B, S] padded with pad_token_id, their mask, and labels [B, T] padded with -100.</summary>
    public static (Tensor Inputs, Tensor Mask, Tensor Labels) Collate(IReadOnlyList<TextPair> batch, int padId, Device device)
    {
        int s = batch.Max(p => p.Input.Length), t = batch.Max(p => p.Target.Length);
        var inputs = new long[batch.Count * s];
        var mask = new long[batch.Count * s];
        var labels = new long[batch.Count * t];
        Array.Fill(inputs, padId);
        Array.Fill(labels, IgnoreIndex);
        for (int b = 0; b < batch.Count; b++)
        {
            for (int i = 0; i < batch[b].Input.Length; i++) { inputs[b * s + i] = batch[b].Input[i]; mask[b * s + i] = 1; }
            for (int i = 0; i < batch[b].Target.Length; i++) labels[b * t + i] = batch[b].Target[i];
        }
        return (tensor(inputs, new long[] { batch.Count, s }).to(device), tensor(mask, new long[] { batch.Count, s }).to(device),
            tensor(labels, new long[] { batch.Count, t }).to(device));
    }
}
