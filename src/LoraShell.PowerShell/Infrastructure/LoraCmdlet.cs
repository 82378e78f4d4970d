using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Management.Automation;
using LoraShell.Core;

namespace LoraShell.PowerShell;

/// <summary>
/// Shared plumbing of every LoraShell cmdlet: core errors become terminating errors with an id and
/// a category; paths resolve against the PowerShell location; long work runs on a worker thread
/// while the pipeline thread writes progress, and Ctrl+C (StopProcessing) cancels it.
/// </summary>
public abstract class LoraCmdlet : PSCmdlet
{
    readonly CancellationTokenSource _stop = new();

    protected CancellationToken Cancellation => _stop.Token;

    protected override void StopProcessing() => _stop.Cancel();

    /// <summary>
    /// Whether a failure concerns the one input item being processed (a file to import), not the command
    /// as a whole. Such failures are non-terminating errors, as Get-Item's are: the pipeline goes on with
    /// the next item and -ErrorAction applies. Everything else stops the command.
    /// </summary>
    protected virtual bool ErrorsArePerItem => false;

    /// <summary>Whether the cmdlet computes with libtorch (all but the backend cmdlets): it is loaded, or fetched, first.</summary>
    protected virtual bool NeedsLibTorch => true;

    protected sealed override void ProcessRecord()
    {
        try
        {
            if (NeedsLibTorch) EnsureBackend();
            Process();
        }
        catch (LoraShellException e) when (ErrorsArePerItem) { WriteError(ToErrorRecord(e)); }
        catch (LoraShellException e) { ThrowTerminatingError(ToErrorRecord(e)); }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { throw new PipelineStoppedException(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Runtime.InteropServices.ExternalException)
        {
            // The safety net for what the core does not name itself: a file system that refuses (read-only,
            // full, a path too long) or libtorch failing. One line, an id and a category; never C++ frames.
            ThrowTerminatingError(ToErrorRecord(e));
        }
    }

    /// <summary>An error record for an exception the core did not turn into a LoraShellException.</summary>
    public static ErrorRecord ToErrorRecord(Exception e)
    {
        string firstLine = e.Message.Split('\n')[0].Trim();
        var (id, category, what) = e switch
        {
            PathTooLongException => ("PathTooLong", ErrorCategory.InvalidArgument, "A path is too long for the file system"),
            UnauthorizedAccessException => ("AccessDenied", ErrorCategory.PermissionDenied, "Access was denied"),
            IOException => ("FileSystemError", ErrorCategory.WriteError, "The file system refused an operation"),
            _ => ("LibTorchError", ErrorCategory.InvalidOperation, "libtorch failed"),
        };
        var wrapped = new LoraShellException(LoraErrorKind.ResourceUnavailable, id, $"{what}: {firstLine}", null, e);
        return new ErrorRecord(wrapped, id, category, null);
    }

    /// <summary>
    /// Loads libtorch before TorchSharp first runs: the bundled, chosen or cached one; on first use, with
    /// none installed, it is fetched from the user's NuGet sources with a progress bar and a line saying
    /// what is fetched and how big.
    /// </summary>
    void EnsureBackend()
    {
        if (Core.Backend.LibTorchLoader.Loaded is not null) return;
        var plan = Core.Backend.LibTorchLoader.Plan();
        if (plan.Folder is not null || plan.Problem is not null)
        {
            Core.Backend.LibTorchLoader.EnsureLoaded(NewFeed, null, null, Cancellation);
            return;
        }
        RunWithProgress($"Fetching {plan.Flavor.Description}", (report, emit, cancel) =>
            Core.Backend.LibTorchLoader.EnsureLoaded(NewFeed, DownloadReporter(report, line => emit(new WarningLine(line))), line => emit(new WarningLine(line)), cancel));
    }

    /// <summary>Progress of package downloads: a line per package saying what is fetched, how big and from where, and the bytes so far.</summary>
    protected static Action<Core.Backend.PackageDownload> DownloadReporter(Action<string, double> report, Action<string> announce)
    {
        var announced = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        return d =>
        {
            if (announced.Add(d.PackageId))
                announce($"Fetching {d.PackageId} {d.Version}{(d.TotalBytes is long total ? $" ({total / 1048576.0:N1} MiB)" : "")} from {d.Source}");
            report($"{d.PackageId}: {d.DoneBytes / 1048576.0:N1}{(d.TotalBytes is long all ? $" of {all / 1048576.0:N1}" : "")} MiB", d.TotalBytes is long size && size > 0 ? (double)d.DoneBytes / size : -1);
        };
    }

    /// <summary>The package sources of the user's NuGet configuration.</summary>
    protected static Core.Backend.NuGetFeed NewFeed() => new(Core.Backend.NuGetSources.FromUserConfig());

    /// <summary>The cmdlet's work for one pipeline input.</summary>
    protected abstract void Process();

    public static ErrorRecord ToErrorRecord(LoraShellException e)
    {
        var category = e.Kind switch
        {
            LoraErrorKind.InvalidArgument => ErrorCategory.InvalidArgument,
            LoraErrorKind.InvalidData => ErrorCategory.InvalidData,
            LoraErrorKind.ObjectNotFound => ErrorCategory.ObjectNotFound,
            LoraErrorKind.InvalidOperation => ErrorCategory.InvalidOperation,
            LoraErrorKind.ResourceUnavailable => ErrorCategory.ResourceUnavailable,
            _ => ErrorCategory.NotSpecified,
        };
        return new ErrorRecord(e, e.ErrorId, category, e.Target);
    }

    protected void Fail(LoraErrorKind kind, string errorId, string message, object? target = null)
        => throw new LoraShellException(kind, errorId, message, target);

    /// <summary>
    /// Checked before ShouldProcess, so that -WhatIf and a real run fail alike: an existing output
    /// file or folder is replaced only with -Force.
    /// </summary>
    protected static void RefuseExisting(string path, bool force) => Core.IO.AtomicFile.RefuseExisting(path, force);

    /// <summary>
    /// For -WhatIf and -Verbose: when <paramref name="folder"/> exists (so -Force replaces it), what goes
    /// and what stays; empty otherwise. <paramref name="writes"/> names the entries the cmdlet writes.
    /// </summary>
    protected string Replacing(string folder, params string[] writes)
    {
        if (!Directory.Exists(folder)) return "";
        string line = Core.IO.FolderReplacement.Plan(folder).Describe(writes.Length == 0 ? null : writes);
        WriteVerbose(line);
        return " — " + line;
    }

    /// <summary>A path as the user typed it, resolved against the current PowerShell location (no wildcards).</summary>
    /// <summary>
    /// Writes a file or folder the cmdlet created as the FileSystem provider's item (what Get-Item returns),
    /// so it carries PSPath/PSParentPath and shows in the usual Directory: table instead of a blank one.
    /// </summary>
    protected void WriteItem(FileSystemInfo item)
    {
        item.Refresh();
        WriteObject(InvokeProvider.Item.Get(new[] { item.FullName }, true, true), enumerateCollection: true);
    }

    protected string ResolveLiteral(string path) => SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);

    /// <summary>Resolves a path that may contain wildcards to every item it matches (a plain path is taken as is).</summary>
    protected IEnumerable<string> ResolveMany(string path, string parameterName)
    {
        if (!WildcardPattern.ContainsWildcardCharacters(path)) return new[] { ResolveLiteral(path) };
        try { return GetResolvedProviderPathFromPSPath(path, out _); }
        catch (ItemNotFoundException) { throw LoraShellException.NotFound("PathNotFound", $"-{parameterName} '{path}' matches nothing.", path); }
    }

    /// <summary>Resolves a path that may contain wildcards; it must match exactly one existing item.</summary>
    protected string ResolveSingle(string path, string parameterName)
    {
        if (!WildcardPattern.ContainsWildcardCharacters(path)) return ResolveLiteral(path);
        Collection<string> matches;
        try { matches = GetResolvedProviderPathFromPSPath(path, out _); }
        catch (ItemNotFoundException)
        {
            throw LoraShellException.NotFound("PathNotFound", $"-{parameterName} '{path}' matches nothing.", path);
        }
        if (matches.Count != 1)
            throw LoraShellException.InvalidArgument("AmbiguousPath", $"-{parameterName} '{path}' matches {matches.Count} items ({string.Join(", ", matches.Take(5))}); it must match exactly one. Use -LiteralPath for a name with wildcard characters.", path);
        return matches[0];
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a worker thread; progress it reports through the given
    /// callback is written with Write-Progress from this (the pipeline) thread.
    /// </summary>
    protected T RunWithProgress<T>(string activity, Func<Action<string, double>, CancellationToken, T> work)
        => RunWithProgress(activity, (report, _, cancel) => work(report, cancel));

    /// <summary>Progress the work emits itself: a negative fraction is work of unknown size; the time left fills SecondsRemaining.</summary>
    protected sealed record ProgressUpdate(string Status, double Fraction, TimeSpan? Remaining = null);

    /// <summary>A -Verbose line the work emits, written when it happens rather than after the work ends.</summary>
    protected sealed record VerboseLine(string Text);

    /// <summary>A warning the work emits (data cut, read as U+FFFD, left without a loss), written as it happens.</summary>
    protected sealed record WarningLine(string Text);

    /// <summary>The two channels of a core <see cref="RunLog"/>, emitted as -Verbose lines and warnings.</summary>
    protected static RunLog EmitLog(Action<object> emit) => new(m => emit(new VerboseLine(m)), m => emit(new WarningLine(m)));

    /// <summary>
    /// As above, and objects the work emits are written to the pipeline as they arrive, in order,
    /// from the pipeline thread.
    /// </summary>
    protected T RunWithProgress<T>(string activity, Func<Action<string, double>, Action<object>, CancellationToken, T> work)
    {
        var items = new BlockingCollection<object>();
        var task = Task.Run(() =>
        {
            try { return work((status, fraction) => items.Add(new ProgressUpdate(status, fraction)), o => items.Add(o), _stop.Token); }
            finally { items.CompleteAdding(); }
        });
        var record = new ProgressRecord(Math.Abs(activity.GetHashCode() % 100000), activity, "Starting");
        var lastWrite = DateTime.MinValue;
        try
        {
            foreach (var item in items.GetConsumingEnumerable())
            {
                if (item is VerboseLine line) { WriteVerbose(line.Text); continue; }
                if (item is WarningLine warning) { WriteWarning(warning.Text); continue; }
                if (item is not ProgressUpdate p) { WriteObject(item); continue; }
                bool newStatus = !string.Equals(StatusKind(p.Status), StatusKind(record.StatusDescription), StringComparison.Ordinal);
                if (!newStatus && (DateTime.UtcNow - lastWrite).TotalMilliseconds < 200 && p.Fraction < 1) continue;
                lastWrite = DateTime.UtcNow;
                record.StatusDescription = p.Status;
                record.PercentComplete = p.Fraction < 0 ? -1 : (int)Math.Clamp(p.Fraction * 100, 0, 100);
                record.SecondsRemaining = p.Remaining is { } left ? (int)Math.Ceiling(left.TotalSeconds) : -1;
                WriteProgress(record);
            }
            record.RecordType = ProgressRecordType.Completed;
            WriteProgress(record);
        }
        catch (PipelineStoppedException)
        {
            // Ctrl+C: the work was told to stop; let it finish cleanly (a training run writes its
            // checkpoint now) before the pipeline unwinds.
            _stop.Cancel();
            foreach (var _ in items.GetConsumingEnumerable()) { }
            try { task.Wait(); } catch (AggregateException) { }
            if (task.IsCompletedSuccessfully) AfterStop(task.Result);
            throw;
        }
        try { return task.GetAwaiter().GetResult(); }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { throw new PipelineStoppedException(); }
    }

    /// <summary>
    /// Ctrl+C stopped the pipeline after the work finished cleanly with <paramref name="result"/>. The pipeline
    /// takes no output any more, so what the user should know (a training run's step and checkpoint) goes to
    /// the host directly, which prints in a terminal and with output redirected alike.
    /// </summary>
    protected virtual void AfterStop(object? result) { }

    /// <summary>Writes a line straight to the host, when the pipeline is stopping and takes no more records.</summary>
    protected void TellHost(string line)
    {
        try { Host.UI.WriteWarningLine(line); }
        catch (Exception e) when (e is PipelineStoppedException or InvalidOperationException or NotImplementedException) { Console.Error.WriteLine("WARNING: " + line); }
    }

    /// <summary>The first word of a status ("step", "Evaluating", "Tokenizing"): a change of phase is shown at once.</summary>
    static string StatusKind(string? status) => status is null ? "" : status.Split(' ', 2)[0];
}
