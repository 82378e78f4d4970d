using LoraShell.Core.Models.Quantization;
using LoraShell.Core.Training;

namespace LoraShell.Core.Jobs;

/// <summary>
/// The job's requirements.txt: the training stack pinned to the releases the script was written against
/// (TRL 1.9.0's SFTConfig and SFTTrainer, PEFT 0.20.0, Accelerate 1.14.0's config keys), plus what the
/// settings need (bitsandbytes for a quantized base, DeepSpeed for ZeRO-3, the kernels hub for the
/// FlashAttention kernel padding-free packing uses).
/// </summary>
public static class TrainingJobRequirements
{
    public const string FileName = "requirements.txt";

    public static IReadOnlyList<string> Lines(TrainingJobOptions o)
    {
        var lines = new List<string>
        {
            "torch==2.10.0",
            o.Training.Packing == PackingMode.Documents ? "transformers[kernels]==5.6.0" : "transformers==5.6.0",
            "trl==1.9.0",
            "peft==0.20.0",
            "accelerate==1.14.0",
            "datasets==4.7.0",
        };
        if (o.Quantization != BaseQuantization.None) lines.Add("bitsandbytes==0.49.2");
        if (o.Strategy == DistributedStrategy.DeepSpeedZero3) lines.Add("deepspeed==0.18.8");
        return lines;
    }

    public static string Render(TrainingJobOptions o)
        => "# The training stack train.py was written against (Export-LoraTrainingJob); install with: pip install -r requirements.txt\n"
           + string.Join("\n", Lines(o)) + "\n";
}
