namespace LoraShell.Core.Training;

/// <summary>
/// Process memory as the kernel sees it (native tensors included): current and peak resident set
/// size from /proc/self/status. <see cref="ResetPeak"/> restarts the peak where the kernel allows.
/// </summary>
public static class MemoryMeter
{
    static double ReadKb(string field)
    {
        if (!OperatingSystem.IsLinux()) return Environment.WorkingSet / 1024.0;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return double.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return 0;
    }

    public static double CurrentMiB => ReadKb("VmRSS") / 1024.0;
    public static double PeakMiB => ReadKb("VmHWM") / 1024.0;

    /// <summary>Resets the kernel's peak-RSS counter to the current RSS (Linux ≥ 4.0); false if not possible.</summary>
    public static bool ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException) { return false; }
    }
}
