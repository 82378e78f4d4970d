namespace LoraShell.Core.Training;

/// <summary>
/// The output folder of a training run and its lifecycle, so that nothing is lost and nothing is left
/// half-made: a folder that already holds files is refused unless the run resumes it or replaces it
/// (-Force), and a replaced folder is only moved aside until the new run has produced something; a run
/// that fails before writing a checkpoint or its result removes what it created and puts back what it
/// replaced.
/// </summary>
public sealed class TrainingOutput : IDisposable
{
    readonly string? _replaced;
    readonly bool _created;
    FileStream? _lock;

    TrainingOutput(string path, bool created, string? replaced, FileStream runLock)
    {
        Path = path;
        _created = created;
        _replaced = replaced;
        _lock = runLock;
    }

    public string Path { get; }

    /// <summary>
    /// Whether a run may write to <paramref name="path"/>, without touching it: a file there, or a folder
    /// that already holds files when the run neither resumes nor replaces it, is an error. The cmdlet
    /// checks this before -WhatIf, so a dry run fails as the real one would.
    /// </summary>
    public static void Check(string path, bool resume, bool overwrite)
    {
        string full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        if (File.Exists(full))
            throw LoraShellException.InvalidArgument("OutputPathIsFile", $"-OutputPath '{full}' is a file; training writes a folder there.", full);
        if (Directory.Exists(full) && !resume && !overwrite && Directory.EnumerateFileSystemEntries(full).Any())
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "OutputPathNotEmpty",
                $"Output folder '{full}' already holds files ({Listing(full)}). Use -Resume to continue the run it holds, -Force to replace it, or another -OutputPath.", full);
    }

    /// <summary>
    /// The run's hold on its folder: <c>.NAME.lock</c> beside it, opened exclusively (an advisory lock the
    /// operating system releases when the process ends, so a run that died leaves no stale lock, only the
    /// harmless file). Taken before anything is moved or written, so a second run — resumed, replacing or
    /// not — is refused by name instead of writing the same steps into the same metrics.jsonl.
    /// </summary>
    static FileStream Lock(string full)
    {
        string lockPath = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(full)!, $".{System.IO.Path.GetFileName(full)}.lock");
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            var line = System.Text.Encoding.UTF8.GetBytes($"LoraShell training run, process {Environment.ProcessId}, since {DateTime.UtcNow:O}\n");
            stream.Write(line);
            stream.Flush();
            return stream;
        }
        catch (IOException e) when (File.Exists(lockPath))
        {
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "OutputPathInUse",
                $"Another training run is writing '{full}' now (it holds '{lockPath}'). Wait for it to finish, stop it with Ctrl+C, or choose another -OutputPath; the lock goes with the process that holds it, so a run that crashed does not keep it.", full, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "OutputPathNotWritable", $"Output folder '{full}' cannot be locked for the run: {e.Message}", full, e);
        }
    }

    internal static TrainingOutput Prepare(string path, bool resume, bool overwrite)
    {
        Check(path, resume, overwrite);
        string full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        var runLock = Lock(full);
        try { return Prepare(full, resume, runLock); }
        catch { runLock.Dispose(); throw; }
    }

    static TrainingOutput Prepare(string full, bool resume, FileStream runLock)
    {
        bool exists = Directory.Exists(full);
        string? replaced = null;
        if (exists && !resume && Directory.EnumerateFileSystemEntries(full).Any())
        {
            replaced = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(full)!, $".{System.IO.Path.GetFileName(full)}.replaced-{Guid.NewGuid():N}");
            Guard(full, () => Directory.Move(full, replaced));
            exists = false;
        }
        Guard(full, () =>
        {
            Directory.CreateDirectory(full);
            string probe = System.IO.Path.Combine(full, $".write-test-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }, restore: replaced);
        return new TrainingOutput(full, created: !exists, replaced, runLock);
    }

    static string Listing(string folder)
    {
        var names = Directory.EnumerateFileSystemEntries(folder).Select(System.IO.Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList();
        return string.Join(", ", names.Take(6)) + (names.Count > 6 ? $", … {names.Count - 6} more" : "");
    }

    /// <summary>Runs a file-system step, turning its failure into an error that names the folder (and putting a moved-aside folder back).</summary>
    static void Guard(string folder, Action step, string? restore = null)
    {
        try { step(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (restore is not null && !Directory.Exists(folder)) try { Directory.Move(restore, folder); } catch (IOException) { }
            throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "OutputPathNotWritable", $"Output folder '{folder}' cannot be written: {e.Message}", folder, e);
        }
    }

    /// <summary>Lets go of the folder: another run may write it now.</summary>
    public void Dispose()
    {
        if (_lock is null) return;
        string lockPath = _lock.Name;
        _lock.Dispose();
        _lock = null;
        try { File.Delete(lockPath); } catch (IOException) { }
    }

    /// <summary>The run produced a checkpoint or its result: the folder it replaced can go.</summary>
    internal void Keep()
    {
        if (_replaced is not null && Directory.Exists(_replaced)) try { Directory.Delete(_replaced, recursive: true); } catch (IOException) { }
    }

    /// <summary>
    /// The run failed. Without a checkpoint it leaves nothing: a folder it created is removed (token cache,
    /// metrics), a replaced one is put back. With a checkpoint, the folder stays: it is where -Resume starts.
    /// </summary>
    internal void Abandon(bool hasCheckpoint)
    {
        using var _ = this; // the lock goes last, after the folder is back in order
        if (hasCheckpoint) { Keep(); return; }
        try
        {
            if (_created || _replaced is not null)
            {
                if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
                if (_replaced is not null) Directory.Move(_replaced, Path);
            }
            else
            {
                // A resumed or empty folder the run did not create: only the run's own cache goes.
                string cache = System.IO.Path.Combine(Path, ".cache");
                if (Directory.Exists(cache) && TrainingCheckpoint.Latest(Path) is null) Directory.Delete(cache, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
