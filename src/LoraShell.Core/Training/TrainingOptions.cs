namespace LoraShell.Core.Training;

/// <summary>What the trainer updates.</summary>
public enum TrainingMethod
{
    /// <summary>Every weight of the model.</summary>
    Full,
    /// <summary>The active LoRA adapter only (plus its biases and modules_to_save).</summary>
    Lora,
    /// <summary>A ladder side network beside the frozen model.</summary>
    Ladder,
}

/// <summary>What the model learns from the data.</summary>
public enum TrainingTask
{
    /// <summary>Next-token prediction on text (.txt, .jsonl).</summary>
    LanguageModeling,
    /// <summary>One label per sentence (.tsv: sentence&lt;TAB&gt;label), from the last token's hidden state.</summary>
    Classification,
    /// <summary>Text-to-text (encoder-decoder models: T5): {"input", "target"} JSONL pairs, the loss on the target.</summary>
    TextToText,
}

/// <summary>Settings of one training run; the same for every method so runs compare on equal terms.</summary>
public sealed record TrainingOptions
{
    public TrainingMethod Method { get; init; } = TrainingMethod.Lora;
    /// <summary>The task; null chooses Classification when every data path is a .tsv file, else LanguageModeling.</summary>
    public TrainingTask? Task { get; init; }
    public bool IsClassification => Task == TrainingTask.Classification
        || (Task is null && DataPaths.Count > 0 && DataPaths.All(ClassificationData.IsClassificationFile));
    /// <summary>Text files, folders, wildcards; .jsonl files hold {"text"}, {"prompt","completion"} or {"messages"} lines.</summary>
    public IReadOnlyList<string> DataPaths { get; init; } = Array.Empty<string>();
    public IReadOnlyList<string>? ValidationPaths { get; init; }
    /// <summary>For {"messages": …} conversations: the loss on the assistant's tokens only (default) or on every token.</summary>
    public ChatLoss ChatLoss { get; init; } = ChatLoss.AssistantTurns;
    /// <summary>Whether documents packed into one window see each other (Stream) or each is read alone (Documents, default).</summary>
    public PackingMode Packing { get; init; } = PackingMode.Documents;
    /// <summary>Share of the data held out for validation when no validation path is given (the last part).</summary>
    public double ValidationFraction { get; init; } = 0.1;
    public int? MaxSteps { get; init; }
    public double? Epochs { get; init; }
    public int BatchSize { get; init; } = 8;
    public int SequenceLength { get; init; } = 256;
    public double LearningRate { get; init; } = 1e-3;
    public int WarmupSteps { get; init; }
    /// <summary>The cosine schedule ends at this fraction of the peak learning rate.</summary>
    public double MinLearningRateRatio { get; init; } = 0.1;
    public int GradientAccumulationSteps { get; init; } = 1;
    public double WeightDecay { get; init; } = 0.0;
    /// <summary>
    /// LoRA+ (Hayou et al. 2024; PEFT's create_loraplus_optimizer): lora_B and every one-dimensional trained
    /// parameter (biases, DoRA magnitudes) learn at this multiple of the learning rate, lora_A and the rest
    /// at the learning rate. Null: one learning rate for all.
    /// </summary>
    public double? LoraPlusRatio { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>Clip the global gradient norm to this value; 0 disables clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Evaluate every N steps (0: only before and after training).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Cap on validation windows per evaluation (0: all).</summary>
    public int MaxEvalWindows { get; init; }
    public string? OutputPath { get; init; }
    public int CheckpointEvery { get; init; }
    public bool Resume { get; init; }
    /// <summary>Replace an -OutputPath that already holds files (it is moved aside until the run has produced something).</summary>
    public bool Overwrite { get; init; }
    /// <summary>Checkpoints kept: the newest N (0: all). The newest, which -Resume reads, is never deleted.</summary>
    public int KeepCheckpoints { get; init; } = 3;
    public long Seed { get; init; } = 1337;
    /// <summary>Adapter to train with Method Lora (default: the first active one).</summary>
    public string? AdapterName { get; init; }
    /// <summary>Side network shape for Method Ladder (default: reduction 8, all layers, magnitude pruning).</summary>
    public SideTuning.LadderConfig? Ladder { get; init; }
    /// <summary>
    /// Hand freed native memory back to the OS after every step and give large tensors their own
    /// mappings (process-wide, see NativeMemory.MapLargeAllocations), so RSS tracks live memory (for
    /// memory measurements). Off by default: re-faulting the pages costs time every step.
    /// </summary>
    public bool TrimMemoryEachStep { get; init; }
    /// <summary>
    /// Keep only each decoder layer's input during the forward pass and recompute the layer in backward:
    /// one layer's activations at a time instead of all of them, for about a third more compute.
    /// Gradients are the same as without it. For Ladder it applies to the side network (backward never
    /// enters the backbone).
    /// </summary>
    public bool GradientCheckpointing { get; init; }
    /// <summary>Batches used to estimate Fisher information for LadderInit.Fisher.</summary>
    public int FisherBatches { get; init; } = 4;

    public void Validate()
    {
        void Bad(string id, string message, object? value) => throw LoraShellException.InvalidArgument(id, message, value);
        if (DataPaths.Count == 0) Bad("NoTrainingData", "No training data was given; pass -DataPath.", null);
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) Bad("InvalidLearningRate", $"Learning rate must be positive (got {LearningRate}).", LearningRate);
        if (BatchSize < 1) Bad("InvalidBatchSize", $"Batch size must be at least 1 (got {BatchSize}).", BatchSize);
        if (SequenceLength < 2) Bad("InvalidSequenceLength", $"Sequence length must be at least 2 (got {SequenceLength}).", SequenceLength);
        if (GradientAccumulationSteps < 1) Bad("InvalidAccumulation", $"Gradient accumulation steps must be at least 1 (got {GradientAccumulationSteps}).", GradientAccumulationSteps);
        if (WarmupSteps < 0) Bad("InvalidWarmup", $"Warmup steps cannot be negative (got {WarmupSteps}).", WarmupSteps);
        if (MaxSteps is < 1) Bad("InvalidMaxSteps", $"MaxSteps must be at least 1 (got {MaxSteps}).", MaxSteps);
        if (Epochs is double e && !(e > 0)) Bad("InvalidEpochs", $"Epochs must be positive (got {e}).", e);
        if (MaxSteps is null && Epochs is null) Bad("NoStopCondition", "Give -MaxSteps or -Epochs.", null);
        if (!(ValidationFraction >= 0 && ValidationFraction < 1)) Bad("InvalidValidationFraction", $"Validation fraction must be in [0, 1) (got {ValidationFraction}).", ValidationFraction);
        if (CheckpointEvery < 0 || EvalEvery < 0) Bad("InvalidInterval", "CheckpointEvery and EvalEvery cannot be negative.", null);
        if (KeepCheckpoints < 0) Bad("InvalidKeepCheckpoints", $"KeepCheckpoints cannot be negative (got {KeepCheckpoints}); 0 keeps every checkpoint.", KeepCheckpoints);
        if (LoraPlusRatio is double ratio && !(ratio > 0 && !double.IsInfinity(ratio))) Bad("InvalidLoraPlusRatio", $"-LoraPlusRatio must be a positive number (got {ratio}); PEFT's documentation suggests 16.", ratio);
        if (LoraPlusRatio is not null && Method != TrainingMethod.Lora) Bad("LoraPlusNeedsLora", $"-LoraPlusRatio sets the learning rate of LoRA's B factors; -Method {Method} has none. Use -Method Lora.", LoraPlusRatio);
        if (Resume && Overwrite) Bad("ResumeAndForce", "-Resume continues the run in -OutputPath and -Force replaces it; give one of them.", null);
        if (Resume && OutputPath is null) Bad("ResumeNeedsOutputPath", "-Resume needs -OutputPath: checkpoints live there.", null);
        if (CheckpointEvery > 0 && OutputPath is null) Bad("CheckpointNeedsOutputPath", "-CheckpointEvery needs -OutputPath.", null);
    }
}
