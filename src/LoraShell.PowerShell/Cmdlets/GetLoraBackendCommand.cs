using System.Management.Automation;
using LoraShell.Core.Backend;

namespace LoraShell.PowerShell;

[Cmdlet(VerbsCommon.Get, "LoraBackend")]
[OutputType(typeof(LoraBackend))]
[CmdletHelp(
    "Says which libtorch LoraShell runs on: the build (CPU or CUDA), where it is loaded from, and whether it is installed.",
    "Get-LoraBackend reports the libtorch this session uses or would use, without loading or fetching anything: Bundled (beside TorchSharp.dll, as in a build of the repository), Cache (fetched from NuGet into the per-user cache by Install-LoraBackend or on first use) or Path (a local libtorch or PyTorch installation chosen with Install-LoraBackend -Path). Status is Installed, NotInstalled (the first model command fetches it), or Damaged with what is wrong (a truncated file: Install-LoraBackend -Force fetches it again). Loaded says whether this session has loaded it; one libtorch serves a process, so a change takes a new session. -ListAvailable lists every build in the cache.")]
[CmdletExample(
    """
    Get-LoraBackend | Format-List Backend, Version, Source, Status
    """,
    "The libtorch this session runs on; in a build of the repository it sits beside TorchSharp.dll.",
    Output = """
    Backend : Cpu
    Version : 2.10.0
    Source  : Bundled
    Status  : Installed
    """)]
[CmdletExample(
    """
    Get-LoraBackend -ListAvailable | Format-Table Backend, Platform, Status, SizeMiB
    """,
    "Every libtorch build in this user's cache (none until Install-LoraBackend or a first use fetches one).")]
public sealed class GetLoraBackendCommand : LoraCmdlet
{
    [Parameter(HelpMessage = "List every libtorch build in the per-user cache instead of the one in use.")]
    public SwitchParameter ListAvailable { get; set; }

    protected override bool NeedsLibTorch => false;

    protected override void Process()
    {
        if (ListAvailable)
        {
            string root = LibTorchCache.Root();
            if (!Directory.Exists(root)) return;
            foreach (var kind in new[] { BackendKind.Cpu, BackendKind.Cuda })
                foreach (var rid in LibTorchFlavor.Rids)
                {
                    var flavor = new LibTorchFlavor(kind, rid);
                    string folder = LibTorchCache.FolderFor(flavor);
                    if (LibTorchCache.ReadManifest(folder) is not { } manifest) continue;
                    var loaded = LibTorchLoader.Loaded;
                    WriteObject(new LoraBackend(flavor, BackendSource.Cache, folder, LibTorchCache.Damage(folder, manifest), loaded is not null && loaded.Folder == folder));
                }
            return;
        }
        if (LibTorchLoader.Loaded is { } state)
        {
            WriteObject(new LoraBackend(state.Flavor, state.Source, state.Folder, null, loaded: true, state.Version));
            return;
        }
        var plan = LibTorchLoader.Plan();
        WriteObject(new LoraBackend(plan.Flavor, plan.Source, plan.Folder, plan.Problem, loaded: false));
    }
}
