using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace LoraShell.PowerShell.Infrastructure;

/// <summary>
/// Lets the module run in hosts that load their own FSharp.Core first, such as the .NET Interactive
/// PowerShell kernel of a polyglot notebook: Plotly.NET (the charts) references FSharp.Core 10.1, and
/// binding fails on the version when an older one is already in the process. The one in the process
/// serves (Plotly.NET uses long-stable FSharp.Core API), so requests for FSharp.Core resolve to it. In a
/// plain pwsh nothing else loads FSharp.Core, the module's own copy binds, and this never runs.
/// </summary>
public sealed class ModuleAssemblyResolution : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport() => AssemblyLoadContext.Default.Resolving += Resolve;

    public void OnRemove(PSModuleInfo module) => AssemblyLoadContext.Default.Resolving -= Resolve;

    static Assembly? Resolve(AssemblyLoadContext context, AssemblyName name)
        => name.Name == "FSharp.Core" ? AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == "FSharp.Core") : null;
}
