using LoraShell.Core.Training;

namespace LoraShell.Bench;

/// <summary>
/// Lets `perf record --control fifo:…` profile the timed training steps only: with LORASHELL_PERF_CTL naming
/// perf's control fifo (start perf with -D -1, disabled), sampling is enabled after the first (warm-up) step
/// and disabled after the last, so model loading, tokenizing and the warm-up stay out of the profile.
/// Without the variable it does nothing. Reports arrive synchronously on the training thread.
/// </summary>
sealed class PerfControl(string fifo, int lastStep) : IProgress<TrainingProgress>
{
    public static IProgress<TrainingProgress>? AfterFirstStep(int steps) =>
        Environment.GetEnvironmentVariable("LORASHELL_PERF_CTL") is { Length: > 0 } fifo ? new PerfControl(fifo, steps) : null;

    public void Report(TrainingProgress value)
    {
        if (value.Step == 1) Send("enable");
        if (value.Step == lastStep) Send("disable");
    }

    void Send(string command)
    {
        using var writer = new StreamWriter(fifo);
        writer.Write(command + "\n");
    }
}
