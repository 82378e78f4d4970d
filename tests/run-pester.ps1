#requires -Version 7.4
<#
.SYNOPSIS
    Runs the module's Pester suite (tests/pester/*.Tests.ps1) against module/LoraShell.
.DESCRIPTION
    Pester 6.2.0 comes from NuGet (tests/pester/PesterPackage.csproj, restored by tests/run.sh).
    Exits non-zero when a test fails; writes NUnit XML to out/test-results/pester.xml.
#>
param([string[]] $Path = (Join-Path $PSScriptRoot 'pester'))
$ErrorActionPreference = 'Stop'
$packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
$pester = Join-Path $packages 'pester/6.2.0/tools/Pester.psd1'
if (-not (Test-Path $pester)) { throw "Pester 6.2.0 not found at $pester; run: dotnet restore tests/pester/PesterPackage.csproj" }
Import-Module $pester -Force

$results = Join-Path $PSScriptRoot '../out/test-results'
New-Item -ItemType Directory -Force $results | Out-Null
$config = New-PesterConfiguration
$config.Run.Path = $Path
$config.Run.Exit = $true
$config.Output.Verbosity = 'Detailed'
$config.TestResult.Enabled = $true
$config.TestResult.OutputFormat = 'NUnitXml'
$config.TestResult.OutputPath = Join-Path $results 'pester.xml'
Invoke-Pester -Configuration $config
