namespace LoraShell.PowerShell;

/// <summary>
/// IProgress that calls back on the reporting thread at once. (System.Progress posts to the thread
/// pool, so a report could arrive after the work has finished and the pipeline has moved on.)
/// </summary>
sealed class InlineProgress<T> : IProgress<T>
{
    readonly Action<T> _report;
    public InlineProgress(Action<T> report) => _report = report;
    public void Report(T value) => _report(value);
}
