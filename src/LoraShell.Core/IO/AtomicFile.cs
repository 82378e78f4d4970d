namespace LoraShell.Core.IO;

/// <summary>
/// Writes files and folders so that a reader never sees half of them: everything goes to a temporary
/// sibling first and is renamed into place only when complete.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write) => Guard(path, () => WriteFile(path, write));

    static void WriteFile(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public static void WriteAllText(string path, string text)
        => Write(path, s => { var bytes = System.Text.Encoding.UTF8.GetBytes(text); s.Write(bytes); });

    /// <summary>
    /// Fills a temporary folder through <paramref name="fill"/>, then renames it to <paramref name="path"/>.
    /// An existing folder is replaced only when <paramref name="overwrite"/> is set; a failure leaves the
    /// previous content (if any) untouched.
    /// </summary>
    public static DirectoryInfo WriteDirectory(string path, bool overwrite, Action<string> fill)
    {
        DirectoryInfo? result = null;
        Guard(path, () => result = FillDirectory(path, overwrite, fill));
        return result!;
    }

    /// <summary>
    /// Turns a file system's refusal (read-only, full, permission, a name too long, a parent that is a
    /// file, a pseudo-file system) into an error that names the path, instead of a raw IOException.
    /// </summary>
    static void Guard(string path, Action work)
    {
        try { work(); }
        catch (PathTooLongException e)
        {
            throw new LoraShellException(LoraErrorKind.InvalidArgument, "PathTooLong", $"'{path}' (or a name inside it) is too long for the file system: {e.Message}", path, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "OutputPathNotWritable", $"'{path}' cannot be written: {e.Message}", path, e);
        }
    }

    /// <summary>The one refusal of a used output path: an existing folder or file is replaced only when <paramref name="overwrite"/> is set.</summary>
    public static void RefuseExisting(string path, bool overwrite)
    {
        if (overwrite) return;
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (Directory.Exists(full))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "OutputPathExists", $"Output folder '{full}' already exists. Use -Force to replace it, or choose another path.", full);
        if (File.Exists(full))
            throw new LoraShellException(LoraErrorKind.InvalidOperation, "OutputPathExists", $"File '{full}' already exists. Use -Force to replace it, or choose another path.", full);
    }

    static DirectoryInfo FillDirectory(string path, bool overwrite, Action<string> fill)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (File.Exists(full))
            throw LoraShellException.InvalidArgument("OutputPathIsFile", $"Output path '{full}' is a file; expected a folder path.", full);
        RefuseExisting(full, overwrite);

        string parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try { fill(temp); }
        catch
        {
            Directory.Delete(temp, recursive: true);
            throw;
        }
        if (!Directory.Exists(full))
        {
            MoveOrDiscard(temp, full);
            return new DirectoryInfo(full);
        }

        // Replacing: the user's other files stay (PEFT's save_pretrained leaves them too), so they move
        // into the new content first; then the folders swap; then what was replaced is deleted. Every
        // step before the last can be undone, and the last cannot fail on a folder checked writable.
        var plan = FolderReplacement.Plan(full, Directory.EnumerateFileSystemEntries(temp).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal)!);
        try { plan.RequireWritable(); }
        catch { Directory.Delete(temp, recursive: true); throw; }
        string old = Path.Combine(parent, $".{Path.GetFileName(full)}.old-{Guid.NewGuid():N}");
        var carried = new List<string>();
        try
        {
            foreach (var name in plan.Kept)
            {
                MoveEntry(Path.Combine(full, name), Path.Combine(temp, name));
                carried.Add(name);
            }
            Directory.Move(full, old);
            try { Directory.Move(temp, full); }
            catch { Directory.Move(old, full); throw; }
        }
        catch
        {
            foreach (var name in carried) MoveEntry(Path.Combine(temp, name), Path.Combine(full, name));
            Directory.Delete(temp, recursive: true);
            throw;
        }
        try { Directory.Delete(old, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LoraShellException(LoraErrorKind.ResourceUnavailable, "ReplacedContentNotDeleted",
                $"'{full}' holds the new content, but the files it replaced could not be deleted from '{old}': {e.Message} Delete that folder yourself.", old, e);
        }
        return new DirectoryInfo(full);
    }

    static void MoveOrDiscard(string temp, string full)
    {
        try { Directory.Move(temp, full); }
        catch { Directory.Delete(temp, recursive: true); throw; }
    }

    static void MoveEntry(string from, string to)
    {
        if (Directory.Exists(from)) Directory.Move(from, to);
        else File.Move(from, to);
    }
}
