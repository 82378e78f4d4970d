using System.Management.Automation;
using LoraShell.Core.Training;

namespace LoraShell.PowerShell;

/// <summary>
/// The settings of a training run that Start-LoraTraining runs and Export-LoraTrainingJob writes out for
/// TRL: one set of parameters, with one help text each, so the two commands take a run the same way.
/// </summary>
public abstract class TrainingSettingsCmdlet : LoraCmdlet
{
    [Parameter(Mandatory = true, Position = 0, HelpMessage = "Training data: text files, folders or wildcards; .jsonl files hold {\"text\"} or {\"prompt\",\"completion\"} records.")]
    [ValidateNotNullOrEmpty]
    public string[] DataPath { get; set; } = Array.Empty<string>();

    [Parameter(HelpMessage = "For {\"messages\": […]} chat data: the loss on the assistant's replies only (AssistantTurns, default, like TRL's assistant_only_loss) or on every token (AllTokens).")]
    public ChatLoss ChatLoss { get; set; } = ChatLoss.AssistantTurns;

    [Parameter(HelpMessage = "How a training window holds several documents (each .jsonl record, conversation or text file is one): Documents (default) packs whole documents into windows (best-fit; only one longer than a window is cut) and reads each as if alone, with its own positions and attention inside it (TRL's padding-free packing), so no token sees another document; Stream cuts one continuous stream, as before, so a document attends to the ones before it and may be split across windows.")]
    public PackingMode Packing { get; set; } = PackingMode.Documents;

    [Parameter(HelpMessage = "Number of optimizer steps. Give this or -Epochs.")]
    [ValidateRange(1, int.MaxValue)]
    public int? MaxSteps { get; set; }

    [Parameter(HelpMessage = "Passes over the training windows (fractions allowed). Give this or -MaxSteps.")]
    [ValidateRange(1e-6, 1e6)]
    public double? Epochs { get; set; }

    [Parameter(HelpMessage = "Sequences per micro-batch (default 8).")]
    [ValidateRange(1, 65536)]
    public int BatchSize { get; set; } = 8;

    [Parameter(HelpMessage = "Tokens per training sequence (default 256).")]
    [ValidateRange(2, 1_000_000)]
    public int SequenceLength { get; set; } = 256;

    [Parameter(HelpMessage = "Peak learning rate (default 1e-3); must be positive.")]
    public double LearningRate { get; set; } = 1e-3;

    [Parameter(HelpMessage = "Steps of linear warmup before the cosine decay (default 0).")]
    [ValidateRange(0, int.MaxValue)]
    public int WarmupSteps { get; set; }

    [Parameter(HelpMessage = "Micro-batches whose gradients add up to one optimizer step (default 1).")]
    [ValidateRange(1, 65536)]
    public int GradientAccumulationSteps { get; set; } = 1;

    [Parameter(HelpMessage = "Keep only each decoder layer's input and recompute the layer in backward: activations of one layer instead of all, for about a third more compute per step. Gradients are unchanged. With -Method Ladder it applies to the side network.")]
    public SwitchParameter GradientCheckpointing { get; set; }

    [Parameter(HelpMessage = "Validation data (files, folders, wildcards); default: the last -ValidationFraction of -DataPath.")]
    public string[]? ValidationPath { get; set; }

    [Parameter(HelpMessage = "Share of the data held out for validation when -ValidationPath is not given (default 0.1: the last 10%).")]
    [ValidateRange(0.0, 0.9)]
    public double ValidationFraction { get; set; } = 0.1;

    [Parameter(HelpMessage = "Evaluate on the validation data every N steps (default: only before and after training).")]
    [ValidateRange(0, int.MaxValue)]
    public int EvalEvery { get; set; }

    [Parameter(HelpMessage = "Write a resumable checkpoint every N steps (Start-LoraTraining: into -OutputPath, which it needs; an exported job: into its output/ folder).")]
    [ValidateRange(0, int.MaxValue)]
    public int CheckpointEvery { get; set; }

    [Parameter(HelpMessage = "How many checkpoints to keep: the newest N (default 3; 0 keeps all). The newest, which -Resume reads, is never deleted.")]
    [ValidateRange(0, int.MaxValue)]
    public int KeepCheckpoints { get; set; } = 3;

    [Parameter(HelpMessage = "Seed for data order and initialisation; the same seed reproduces a run on CPU (default 1337).")]
    public long Seed { get; set; } = 1337;

    [Parameter(HelpMessage = "Clip the gradient norm to this value; 0 disables clipping (default 1).")]
    [ValidateRange(0.0, double.MaxValue)]
    public double MaxGradNorm { get; set; } = 1.0;

    [Parameter(HelpMessage = "AdamW weight decay for weight matrices (default 0).")]
    [ValidateRange(0.0, 10.0)]
    public double WeightDecay { get; set; }

    [Parameter(HelpMessage = "With -Method Lora, the adapter to train (default: the active one).")]
    [ArgumentCompleter(typeof(AdapterNameCompleter))]
    public string? AdapterName { get; set; }

    /// <summary>The run's settings from these parameters (paths resolved against the PowerShell location).</summary>
    protected TrainingOptions SharedOptions() => new()
    {
        ChatLoss = ChatLoss,
        Packing = Packing,
        DataPaths = DataPath.Select(ResolveLiteral).ToList(),
        ValidationPaths = ValidationPath?.Select(ResolveLiteral).ToList(),
        ValidationFraction = ValidationFraction, MaxSteps = MaxSteps, Epochs = Epochs, BatchSize = BatchSize,
        SequenceLength = SequenceLength, LearningRate = LearningRate, WarmupSteps = WarmupSteps,
        GradientAccumulationSteps = GradientAccumulationSteps, EvalEvery = EvalEvery,
        CheckpointEvery = CheckpointEvery, KeepCheckpoints = KeepCheckpoints, Seed = Seed, MaxGradNorm = MaxGradNorm,
        WeightDecay = WeightDecay, AdapterName = AdapterName, GradientCheckpointing = GradientCheckpointing,
    };
}
