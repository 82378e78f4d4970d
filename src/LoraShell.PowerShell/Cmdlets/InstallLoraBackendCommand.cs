using System.Management.Automation;
using LoraShell.Core;
using LoraShell.Core.Backend;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsLifecycle.Install, "LoraBackend", SupportsShouldProcess = true, DefaultParameterSetName = FeedSet)]
[OutputType(typeof(LoraBackend))]
[CmdletHelp(
    "Installs the libtorch LoraShell computes with: the CPU or CUDA build for this platform from NuGet into the per-user cache, or a local libtorch 2.10.",
    "LoraShell's module ships without libtorch (440 MB for the CPU build, gigabytes for CUDA). Install-LoraBackend restores TorchSharp's libtorch package for this platform and -Backend (libtorch-cpu-RID, or libtorch-cuda-12.8-RID whose large libraries come in fragment packages that are joined and checked against their .sha files) from the package sources of your NuGet configuration (~/.nuget/NuGet/NuGet.Config; the public NuGet gallery when there is none, as dotnet does; a company feed serves it when it is configured, with its packageSourceCredentials in clear text) into the per-user cache (~/.cache/LoraShell/libtorch/2.10.0-cpu-linux-x64 and alike), with a progress bar. The first model command does the same for the CPU build when nothing is installed. -Path uses a libtorch you have instead: a libtorch folder or zip from pytorch.org, or a PyTorch 2.10 installation's torch/lib, loaded in place so its CUDA libraries resolve. TorchSharp 0.107 binds to libtorch 2.10.0 and checks nothing itself, so any other version is refused by name. An installed build is kept unless -Force fetches it again (a damaged cache, a truncated file, is reported by the first model command and by Get-LoraBackend). One libtorch serves a process: a build installed after one was loaded is used from the next session on. -Platform restores another platform's build (for an offline machine). Supports -WhatIf, which shows the restore plan.")]
[CmdletExample(
    """
    Install-LoraBackend -WhatIf
    """,
    "Shows what would be restored, from which sources, into which folder, without fetching anything.")]
[CmdletExample(
    """
    Install-LoraBackend -Backend Cuda -Platform win-x64 -WhatIf
    """,
    "The restore plan of the CUDA build for Windows: libtorch-cuda-12.8-win-x64 2.10.0 and its parts into the cache folder 2.10.0-cuda-12.8-win-x64.")]
public sealed class InstallLoraBackendCommand : LoraCmdlet
{
    const string FeedSet = "Feed", PathSet = "Path";

    [Parameter(ParameterSetName = FeedSet, HelpMessage = "Cpu (default) or Cuda (CUDA 12.8; linux-x64 and win-x64).")]
    public BackendKind Backend { get; set; } = BackendKind.Cpu;

    [Parameter(ParameterSetName = FeedSet, HelpMessage = "The platform to restore for: linux-x64, win-x64 or osx-arm64 (default: this machine's). Another platform's build is fetched into the cache, not used here.")]
    [ValidateSet("linux-x64", "win-x64", "osx-arm64")]
    public string? Platform { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = PathSet, HelpMessage = "A local libtorch 2.10: a libtorch folder or zip from pytorch.org, or a PyTorch 2.10 installation's torch/lib (or the torch folder above it).")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(ParameterSetName = FeedSet, HelpMessage = "Fetch the build again even when it is installed (a damaged cache).")]
    public SwitchParameter Force { get; set; }

    protected override bool NeedsLibTorch => false;

    protected override void Process()
    {
        if (ParameterSetName == PathSet) { UseLocal(); return; }
        var flavor = Platform is null ? LibTorchFlavor.ForThisMachine(Backend) : new LibTorchFlavor(Backend, Platform);
        if (Backend == BackendKind.Cuda && flavor.Rid == "osx-arm64")
            throw LoraShellException.InvalidArgument("CudaNotOnMac", "There is no CUDA build of libtorch for macOS; use -Backend Cpu.", flavor.Rid);
        bool here = flavor.Rid == LibTorchFlavor.CurrentRid();
        string folder = LibTorchCache.FolderFor(flavor);
        var manifest = LibTorchCache.ReadManifest(folder);
        string? damage = manifest is null ? null : LibTorchCache.Damage(folder, manifest);
        if (manifest is not null && damage is null && !Force)
        {
            WriteVerbose($"{flavor.Description} is installed in '{folder}'; -Force fetches it again.");
            Finish(flavor, here, folder);
            return;
        }
        var feed = NewFeed();
        string sources = string.Join(", ", feed.Sources.Select(s => $"{s.Name} ({s.Location})"));
        if (!ShouldProcess(folder, $"Restore {flavor.PackageId} {LibTorchFlavor.Version} and the packages it depends on from {sources} (your NuGet configuration: {NuGetSources.UserConfigPath()})")) return;
        RunWithProgress($"Installing {flavor.Description}", (report, emit, cancel) =>
            LibTorchCache.Install(flavor, feed, DownloadReporter(report, line => emit(new VerboseLine(line))), status => report(status, -1), cancel));
        Finish(flavor, here, folder);
    }

    void Finish(LibTorchFlavor flavor, bool here, string folder)
    {
        if (here) Select(new BackendSelection(flavor.Kind, null), flavor.Description);
        var manifest = LibTorchCache.ReadManifest(folder);
        WriteObject(new LoraBackend(flavor, BackendSource.Cache, folder, manifest is null ? "no manifest" : LibTorchCache.Damage(folder, manifest), LibTorchLoader.Loaded?.Folder == folder));
    }

    void UseLocal()
    {
        string full = ResolveLiteral(Path);
        var flavor = LibTorchFlavor.ForThisMachine(BackendKind.Cpu);
        bool zip = File.Exists(full) && full.EndsWith(".zip", StringComparison.OrdinalIgnoreCase);
        if (File.Exists(full) && !zip)
            throw LoraShellException.InvalidArgument("LibTorchPathNotSupported", $"'{full}' is a file but not a .zip; expected a libtorch folder or zip, or a PyTorch installation's torch/lib folder.", full);
        if (!ShouldProcess(full, zip ? "Unpack this libtorch zip into the cache and use it" : "Use this libtorch in place")) return;
        var info = zip ? LocalLibTorch.UnpackZip(full, flavor) : LocalLibTorch.Inspect(full, flavor);
        var chosen = flavor with { Kind = info.Kind };
        Select(new BackendSelection(info.Kind, info.LibFolder), $"{info.Version} in '{info.LibFolder}'");
        WriteObject(new LoraBackend(chosen, BackendSource.Path, info.LibFolder, null, LibTorchLoader.Loaded?.Folder == info.LibFolder, info.Version));
    }

    void Select(BackendSelection selection, string what)
    {
        LibTorchLoader.Select(selection);
        if (LibTorchLoader.Loaded is { } loaded && (loaded.Source == BackendSource.Bundled || loaded.Flavor.Kind != selection.Kind || (selection.Path ?? LibTorchCache.FolderFor(loaded.Flavor)) != loaded.Folder))
            WriteWarning($"This session already runs on {loaded.Flavor.Description} from '{loaded.Folder}' (one libtorch per process); {what} is used from the next session on{(loaded.Source == BackendSource.Bundled ? ", in a module installed without a bundled libtorch" : "")}.");
    }
}
