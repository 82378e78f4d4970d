namespace LoraShell.Core;

/// <summary>
/// What long work tells its caller while it runs, on two channels: <see cref="Info"/> lines narrate
/// (a cmdlet writes them with -Verbose), <see cref="Warn"/> lines say something the user must know to
/// trust the result — data that was cut, read as U+FFFD or left without a loss — and a cmdlet writes
/// them as warnings, visible without -Verbose. With one sink, warnings go to it too.
/// </summary>
public sealed class RunLog
{
    readonly Action<string>? _info, _warning;

    public RunLog(Action<string>? info, Action<string>? warning = null)
    {
        _info = info;
        _warning = warning ?? info;
    }

    public void Info(string line) => _info?.Invoke(line);

    public void Warn(string line) => _warning?.Invoke(line);

    /// <summary>A caller with one sink (a test's list, a sample's console) passes it as it is.</summary>
    public static implicit operator RunLog(Action<string>? sink) => new(sink);
}
