using LoraShell.Core.Models;
using LoraShell.Core.Models.Blocks;
using LoraShell.Core.Tokenizers;
using LoraShell.Core.Training.Tuners;
using static TorchSharp.torch;

namespace LoraShell.Core.Training;

/// <summary>
/// Next-token prediction over a token corpus: seeded windows of -SequenceLength tokens, the loss
/// computed a chunk of tokens at a time from the final hidden states (<see cref="ChunkedCrossEntropy"/>),
/// mean validation loss over the held-out windows.
/// </summary>
internal sealed class LanguageModelingObjective : TrainingObjective
{
    readonly TrainingOptions _o;
    readonly TokenCorpus _corpus;
    readonly BatchSampler _train, _validation;
    CausalLM? _model;
    Func<Tensor, PackedLayout?, Tensor>? _hidden, _forward;

    public LanguageModelingObjective(TrainingOptions o, ITextTokenizer tokenizer, string? output, RunLog? log = null, Action<TrainingActivity>? activity = null)
    {
        _o = o;
        _corpus = TokenCorpus.Load(o.DataPaths, o.ValidationPaths, o.ValidationFraction, tokenizer, output is null ? null : Path.Combine(output, ".cache"),
            o.SequenceLength, o.ChatLoss, log, activity);
        _train = new BatchSampler(_corpus.Train, o.SequenceLength, o.Seed, o.Packing);
        if (_train.WindowCount == 0)
            throw LoraShellException.InvalidData("DataTooSmall",
                $"The training data holds {_corpus.Train.Length} tokens; one window of -SequenceLength {o.SequenceLength} needs {o.SequenceLength + 1}.", o.DataPaths[0]);
        if (!_train.HasTargets())
            throw LoraShellException.InvalidData("NoTrainingTargets",
                $"No training window of -SequenceLength {o.SequenceLength} holds a token to train on: every window is prompt or user text. Raise -SequenceLength, shorten the prompts, or use -ChatLoss AllTokens.", o.DataPaths[0]);
        _validation = new BatchSampler(_corpus.Validation, o.SequenceLength, o.Seed, o.Packing);
        _hasValidation = _validation.WindowCount > 0 && _validation.HasTargets(o.MaxEvalWindows);
        if (_validation.WindowCount == 0 && _corpus.Validation.Length > 0)
            log?.Warn($"The validation data holds {_corpus.Validation.Length:N0} tokens, fewer than one window of -SequenceLength {o.SequenceLength} + 1; no validation loss will be reported. Give more validation data or a shorter -SequenceLength.");
        else if (_validation.WindowCount > 0 && !_hasValidation)
            log?.Warn($"No validation window{(o.MaxEvalWindows > 0 && o.MaxEvalWindows < _validation.WindowCount ? $" of the {o.MaxEvalWindows:N0} scored" : "")} holds a token to predict (prompts or user turns fill them); no validation loss will be reported. Raise -SequenceLength{(o.MaxEvalWindows > 0 ? " or -MaxEvalWindows" : "")}, or give validation data with shorter prompts.");
        else if (_validation.WindowCount == 0)
            log?.Info("No validation data (-ValidationFraction 0 and no -ValidationPath): no validation loss will be reported.");
    }

    readonly bool _hasValidation;

    public override TrainingTask Task => TrainingTask.LanguageModeling;

    // Whole-document windows differ from the stream's cuts only when there are several documents; a run of one
    // document (and every checkpoint written before packing, which cut the stream) keeps the old fingerprint.
    public override string BatchingFingerprint => _o.Packing == PackingMode.Documents && _corpus.Train.DocumentCount > 1 ? "|packed-documents" : "";
    public override long EpochSize => _train.WindowCount;
    public override bool HasValidation => _hasValidation;
    public override string EvaluationSize => _o.MaxEvalWindows > 0 && _o.MaxEvalWindows < _validation.WindowCount
        ? $"{_o.MaxEvalWindows:N0} of {_validation.WindowCount:N0} windows" : $"all {_validation.WindowCount:N0} windows";
    public override TokenStream FisherData => _corpus.Train;

    public override void Bind(IAdaptableModel model, Tuner tuner, long seed, RunLog? log)
    {
        _model = (CausalLM)model; // TrainingRun gives an encoder-decoder the text-to-text objective
        _hidden = tuner.HiddenStates;
        _forward = tuner.Logits;
        log?.Info($"Data: {_corpus.Train.Length:N0} training tokens, {_corpus.Validation.Length:N0} validation tokens{(_corpus.FromCache ? " (from cache)" : "")}; "
            + (_corpus.Train.DocumentCount <= 1 ? "one document." : _o.Packing == PackingMode.Documents
                ? $"{_corpus.Train.DocumentCount:N0} documents packed whole into {_train.WindowCount:N0} windows ({100 * _train.FillRatio:F0}% filled, the rest padding), each read alone (-Packing Documents)."
                : $"{_corpus.Train.DocumentCount:N0} documents cut as one stream, each attending to those before it in its window (-Packing Stream)."));
    }

    public override (double Loss, long Tokens)? Step(long firstDraw, int batchSize, double scale)
    {
        var model = _model!;
        var (inputs, targets, packed) = _train.Batch(firstDraw, batchSize, model.Device);
        var flatTargets = targets.reshape(-1);
        long count = flatTargets.ne(BatchSampler.IgnoreIndex).sum().item<long>();
        if (count == 0) return null;
        var states = _hidden!(inputs, packed);
        double sum = ChunkedCrossEntropy.SumAndBackward(states.reshape(-1, states.shape[^1]), model.Logits, flatTargets,
            ChunkedCrossEntropy.RowsPerChunk(model.Config.VocabSize), scale / count, BatchSampler.IgnoreIndex);
        return (sum / count, inputs.numel());
    }

    public override EvalRecord Evaluate(int step, Action<double>? done = null) => new(step, MeanLoss(_forward!, _model!, _validation, _o, done));

    /// <summary>Mean loss over the validation windows (targets marked not-predicted are ignored); NaN without any.</summary>
    public static double MeanLoss(Func<Tensor, PackedLayout?, Tensor> forward, CausalLM model, BatchSampler validation, TrainingOptions o, Action<double>? done = null)
    {
        double sum = 0;
        long count = 0;
        long windows = o.MaxEvalWindows > 0 ? Math.Min(o.MaxEvalWindows, validation.WindowCount) : validation.WindowCount, scored = 0;
        using var _ = no_grad();
        foreach (var (inputs, targets, packed) in validation.Sequential(o.BatchSize, model.Device, o.MaxEvalWindows))
        {
            using var scope = NewDisposeScope();
            using var i = inputs; using var t = targets;
            using var positions = packed?.Positions; using var mask = packed?.Mask;
            var logits = forward(i, packed);
            var flat = t.reshape(-1);
            sum += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), flat,
                ignore_index: BatchSampler.IgnoreIndex, reduction: nn.Reduction.Sum).item<float>();
            count += flat.ne(BatchSampler.IgnoreIndex).sum().item<long>();
            scored += i.shape[0];
            done?.Invoke(windows == 0 ? 1 : Math.Min(1.0, (double)scored / windows));
        }
        return count == 0 ? double.NaN : sum / count;
    }
}
