using System.Diagnostics;
using LoraShell.Core.IO;
using LoraShell.Core.Lora;

namespace LoraShell.Core.Tests;

/// <summary>
/// Replacing an output folder with -Force (issue 32, class 9): the user's own files stay, stale weights
/// go, and a folder that cannot be replaced is refused before anything moves — no half-done replace, no
/// hidden .old- or .tmp- sibling left behind.
/// </summary>
public class FolderReplacementTests
{
    static void WriteAdapter(string folder, string config) => AtomicFile.WriteDirectory(folder, overwrite: true, temp =>
    {
        File.WriteAllText(Path.Combine(temp, PeftAdapterFiles.ConfigFile), config);
        File.WriteAllText(Path.Combine(temp, PeftAdapterFiles.WeightsFile), "new weights");
    });

    static string[] Siblings(string folder) => Directory.GetFileSystemEntries(Path.GetDirectoryName(folder)!).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void AReplaceKeepsTheUsersFilesAndRemovesOnlyWeightsItDoesNotWrite()
    {
        using var dir = new TempFolder();
        string target = dir.File("adapter");
        Directory.CreateDirectory(Path.Combine(target, "runs"));
        File.WriteAllText(Path.Combine(target, "notes.md"), "my notes");
        File.WriteAllText(Path.Combine(target, "runs", "log.txt"), "a log");
        File.WriteAllText(Path.Combine(target, PeftAdapterFiles.ConfigFile), "old config");
        File.WriteAllText(Path.Combine(target, "adapter_model.bin"), "stale pickle weights a loader could prefer");

        var preview = FolderReplacement.Plan(target);
        Assert.Equal(new[] { "adapter_model.bin" }, preview.Removed);
        Assert.Contains("removes the other weight files (adapter_model.bin)", preview.Describe(new[] { PeftAdapterFiles.ConfigFile, PeftAdapterFiles.WeightsFile }));
        Assert.Contains("keeps everything else (notes.md, runs)", preview.Describe(new[] { PeftAdapterFiles.ConfigFile, PeftAdapterFiles.WeightsFile }));

        WriteAdapter(target, "new config");
        Assert.Equal("my notes", File.ReadAllText(Path.Combine(target, "notes.md")));
        Assert.Equal("a log", File.ReadAllText(Path.Combine(target, "runs", "log.txt")));
        Assert.Equal("new config", File.ReadAllText(Path.Combine(target, PeftAdapterFiles.ConfigFile)));
        Assert.False(File.Exists(Path.Combine(target, "adapter_model.bin")));
        Assert.Equal(new[] { "adapter" }, Siblings(target));
    }

    [Fact]
    public void AFailedWriteLeavesTheOldFolderAsItWas()
    {
        using var dir = new TempFolder();
        string target = dir.File("adapter");
        WriteAdapter(target, "first");
        File.WriteAllText(Path.Combine(target, "notes.md"), "my notes");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.WriteDirectory(target, overwrite: true, temp =>
        {
            File.WriteAllText(Path.Combine(temp, PeftAdapterFiles.ConfigFile), "half");
            throw new InvalidOperationException("disk full, say");
        }));
        Assert.Equal("first", File.ReadAllText(Path.Combine(target, PeftAdapterFiles.ConfigFile)));
        Assert.Equal("my notes", File.ReadAllText(Path.Combine(target, "notes.md")));
        Assert.Equal(new[] { "adapter" }, Siblings(target));
    }

    /// <summary>
    /// Makes <paramref name="folder"/> refuse new and removed entries: chmod for a user, the immutable
    /// attribute for root (whom permissions do not stop). False where neither holds on this file system.
    /// </summary>
    static bool MakeReadOnly(string folder, bool readOnly)
    {
        bool root = Environment.UserName == "root";
        var psi = root ? new ProcessStartInfo("chattr", new[] { readOnly ? "+i" : "-i", folder }) : new ProcessStartInfo("chmod", new[] { readOnly ? "555" : "755", folder });
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        if (!readOnly) return true;
        try { File.WriteAllText(Path.Combine(folder, ".probe"), ""); File.Delete(Path.Combine(folder, ".probe")); return false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return true; }
    }

    [Fact]
    public void AReadOnlyFolderIsRefusedBeforeAnythingMoves()
    {
        using var dir = new TempFolder();
        string target = dir.File("adapter");
        WriteAdapter(target, "first");
        Assert.True(MakeReadOnly(target, true), "this file system lets neither chmod nor chattr make a folder read-only");
        try
        {
            var e = Assert.Throws<LoraShellException>(() => WriteAdapter(target, "second"));
            Assert.Equal("OutputPathNotWritable", e.ErrorId);
            Assert.Contains("Nothing was changed", e.Message);
        }
        finally { MakeReadOnly(target, false); }
        Assert.Equal("first", File.ReadAllText(Path.Combine(target, PeftAdapterFiles.ConfigFile)));
        Assert.Equal(new[] { "adapter" }, Siblings(target)); // no .adapter.old-… nor .adapter.tmp-…
    }
}
