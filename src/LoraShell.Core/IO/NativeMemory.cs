using System.Runtime.InteropServices;

namespace LoraShell.Core.IO;

/// <summary>
/// Hands freed native memory back to the OS. glibc keeps freed heap memory for reuse, so a loop
/// that frees one large tensor per iteration keeps RSS at its high-water mark; trimming between
/// tensors keeps streaming work (Invoke-SvdDelta) near the size of the tensors in flight.
/// </summary>
public static class NativeMemory
{
    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(UIntPtr pad);

    static bool _unavailable;

    public static void Trim()
    {
        if (_unavailable || !OperatingSystem.IsLinux()) return;
        try { MallocTrim(UIntPtr.Zero); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _unavailable = true; } // not glibc (e.g. musl)
    }
}
