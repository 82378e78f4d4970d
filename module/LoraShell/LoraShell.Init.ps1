# Runs before the module's assemblies load (ScriptsToProcess). They target .NET 10: PowerShell 7.6, or any
# host on .NET 10 such as .NET Interactive's PowerShell kernel (PowerShell 7.5 SDK). On an older runtime
# the load would fail with a bare assembly error; say what is needed instead.
if ([Environment]::Version.Major -lt 10) {
    throw "LoraShell needs .NET 10: PowerShell 7.6 or later, or a host running on .NET 10. This is PowerShell $($PSVersionTable.PSVersion) on .NET $([Environment]::Version)."
}
