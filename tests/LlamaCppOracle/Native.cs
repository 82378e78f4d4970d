using System.Runtime.InteropServices;
using LLama.Native;

namespace LlamaCppOracle;

/// <summary>An error to report as {"error": ...} with a non-zero exit code.</summary>
sealed class OracleException(string message) : Exception(message);

/// <summary>
/// The bits of llama.cpp this tool needs beyond LLamaSharp's wrappers: log capture, and the few C
/// functions (LoRA adapter init/set, ggml version) called directly. Those bind to the very libllama.so
/// that LLamaSharp selected (found in /proc/self/maps), so there is only ever one copy of llama.cpp.
/// </summary>
static class Native
{
    static bool _verbose;
    static readonly List<string> Errors = [];
    static string _partial = "";

    /// <summary>Routes llama.cpp's (and LLamaSharp's loader's) log to stderr only with --verbose; keeps
    /// warnings and errors so that failures can say why. Must run before anything loads the library.</summary>
    public static void Init(bool verbose)
    {
        _verbose = verbose;
        NativeLibraryConfig.All.WithLogCallback(OnLog);
        // LLamaSharp picks the build matching the CPU (noavx, avx, avx2, avx512); their kernels differ in the
        // last bits. LLAMACPP_ORACLE_AVX=none|avx|avx2|avx512 pins one, e.g. to compare across machines.
        if (Environment.GetEnvironmentVariable("LLAMACPP_ORACLE_AVX") is { Length: > 0 } avx)
        {
            if (!Enum.TryParse<AvxLevel>(avx, ignoreCase: true, out var level))
                throw new OracleException($"LLAMACPP_ORACLE_AVX must be none, avx, avx2 or avx512, not '{avx}'");
            NativeLibraryConfig.All.WithCuda(false).WithVulkan(false).WithAvx(level).WithAutoFallback(false);
        }
        NativeLibrary.SetDllImportResolver(typeof(Native).Assembly, (name, _, _) =>
            name is "llama" or "ggml-base" ? NativeLibrary.Load(Path.Combine(LibraryDirectory, $"lib{name}.so")) : IntPtr.Zero);
        // Load (and pick) the native library now: some LLamaSharp helpers, e.g. LLamaModelParams.Default(),
        // call into it without going through NativeApi's static constructor that installs its resolver.
        NativeApi.llama_empty_call();
    }

    static void OnLog(LLamaLogLevel level, string message)
    {
        if (_verbose)
            Console.Error.Write(message);
        if (level is LLamaLogLevel.Error or LLamaLogLevel.Warning || (level == LLamaLogLevel.Continue && _partial != ""))
        {
            _partial += message;
            if (_partial.EndsWith('\n'))
            {
                lock (Errors) Errors.Add(_partial.TrimEnd());
                _partial = "";
            }
        }
    }

    /// <summary>A diagnostic line on stderr, with --verbose only.</summary>
    public static void Trace(string message)
    {
        if (_verbose)
            Console.Error.WriteLine($"LlamaCppOracle: {message}");
    }

    /// <summary>The warnings and errors llama.cpp logged since the last call, as one string.</summary>
    public static string TakeLog()
    {
        lock (Errors)
        {
            var text = string.Join(" | ", Errors.TakeLast(6));
            Errors.Clear();
            return text;
        }
    }

    /// <summary>Full path of the libllama.so LLamaSharp loaded (it picks noavx/avx/avx2/avx512 by CPU).</summary>
    public static string LibraryPath
    {
        get
        {
            NativeApi.llama_empty_call(); // makes LLamaSharp load (and pick) the native library
            if (OperatingSystem.IsLinux())
                foreach (var line in File.ReadLines("/proc/self/maps"))
                {
                    var at = line.IndexOf('/');
                    if (at >= 0 && line.EndsWith("/libllama.so", StringComparison.Ordinal))
                        return line[at..];
                }
            throw new OracleException("cannot locate the libllama.so that LLamaSharp loaded (Linux only)");
        }
    }

    static string LibraryDirectory => Path.GetDirectoryName(LibraryPath)!;

    public static IntPtr LoadLora(SafeLlamaModelHandle model, string path)
    {
        if (!File.Exists(path))
            throw new OracleException($"LoRA adapter file not found: {path}");
        var adapter = llama_adapter_lora_init(model.DangerousGetHandle(), Path.GetFullPath(path));
        if (adapter == IntPtr.Zero)
            throw new OracleException($"llama.cpp failed to load LoRA adapter {path}: {TakeLog()}");
        return adapter; // freed by llama.cpp together with the model
    }

    public static unsafe void SetLoras(SafeLLamaContextHandle context, IntPtr[] adapters, float[] scales)
    {
        fixed (IntPtr* a = adapters)
        fixed (float* s = scales)
            if (llama_set_adapters_lora(context.DangerousGetHandle(), a, (nuint)adapters.Length, s) != 0)
                throw new OracleException($"llama_set_adapters_lora failed: {TakeLog()}");
    }

    public static string GgmlVersion => Marshal.PtrToStringUTF8(ggml_version()) ?? "";
    public static string GgmlCommit => Marshal.PtrToStringUTF8(ggml_commit()) ?? "";

    [DllImport("llama")] static extern IntPtr llama_adapter_lora_init(IntPtr model, [MarshalAs(UnmanagedType.LPUTF8Str)] string path);
    [DllImport("llama")] static extern unsafe int llama_set_adapters_lora(IntPtr ctx, IntPtr* adapters, nuint nAdapters, float* scales);
    [DllImport("ggml-base")] static extern IntPtr ggml_version();
    [DllImport("ggml-base")] static extern IntPtr ggml_commit();
}
