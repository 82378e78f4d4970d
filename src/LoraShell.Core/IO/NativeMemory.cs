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

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int MallOpt(int parameter, int value);

    const int M_MMAP_THRESHOLD = -3;
    static bool _unavailable;

    /// <summary>
    /// Serves every allocation of at least <paramref name="bytes"/> with its own mmap, returned to the OS
    /// on free. glibc otherwise raises its mmap threshold each time a large block is freed, after which
    /// tensors come from the heap and fragment it: peak RSS then drifts far above live memory. Fixing
    /// the threshold costs page faults on each large allocation, so it is for memory-sensitive runs.
    /// </summary>
    public static void MapLargeAllocations(int bytes = 1 << 20)
    {
        if (_unavailable || !OperatingSystem.IsLinux()) return;
        try { MallOpt(M_MMAP_THRESHOLD, bytes); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _unavailable = true; }
    }

    /// <summary>
    /// Collects and decommits the managed heap. Tokenizing a corpus leaves tens of MiB of garbage
    /// (80 MiB for Tiny Shakespeare) that the GC would otherwise keep resident through a whole training
    /// run, in every method's peak memory alike; collecting once after loading costs a few milliseconds.
    /// </summary>
    public static void ReleaseManagedGarbage() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    public static void Trim()
    {
        if (_unavailable || !OperatingSystem.IsLinux()) return;
        try { MallocTrim(UIntPtr.Zero); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _unavailable = true; } // not glibc (e.g. musl)
    }
}
