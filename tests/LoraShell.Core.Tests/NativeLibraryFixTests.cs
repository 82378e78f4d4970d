using System.Diagnostics;

namespace LoraShell.Core.Tests;

/// <summary>
/// The Debian 12 fix (Directory.Build.targets): the libLibTorchSharp.so next to the test assembly has
/// its GLIBCXX_3.4.32 need marked weak, while the NuGet cache's copy is untouched.
/// </summary>
public class NativeLibraryFixTests
{
    static string ReadElfVersions(string path)
    {
        var psi = new ProcessStartInfo("readelf", $"-V \"{path}\"") { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    static string? VersionLine(string readelf)
        => readelf.Split('\n').FirstOrDefault(l => l.Contains("Name: GLIBCXX_3.4.32"));

    static bool SystemHasGlibcxx3432()
        => File.Exists("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
           && File.ReadAllBytes("/usr/lib/x86_64-linux-gnu/libstdc++.so.6").AsSpan().IndexOf("GLIBCXX_3.4.32\0"u8) >= 0;

    [Fact]
    public void OutputCopyIsWeakAndNuGetCacheIsUntouched()
    {
        if (!OperatingSystem.IsLinux() || SystemHasGlibcxx3432()) return; // nothing to fix there
        string output = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string cache = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(output), output);
        Assert.True(File.Exists(cache), cache);

        string? patched = VersionLine(ReadElfVersions(output));
        string? original = VersionLine(ReadElfVersions(cache));
        Assert.NotNull(patched);
        Assert.NotNull(original);
        Assert.Contains("Flags: WEAK", patched);
        Assert.Contains("Flags: none", original);
        // Exactly one byte differs: the flag, nothing else.
        var a = File.ReadAllBytes(output);
        var b = File.ReadAllBytes(cache);
        Assert.Equal(b.Length, a.Length);
        Assert.Equal(1, a.Zip(b).Count(p => p.First != p.Second));
    }
}
