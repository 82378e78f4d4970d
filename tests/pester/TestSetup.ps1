# Dot-sourced by every *.Tests.ps1: imports the built module and finds ../shared.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
Import-Module (Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1')
$script:Shared = if ($env:LORASHELL_SHARED) { $env:LORASHELL_SHARED } else { (Resolve-Path (Join-Path $RepoRoot '../shared')).Path }
$script:StoriesPath = Join-Path $Shared 'models/stories260K/stories260K.bin'
$script:Greedy200 = Join-Path $Shared 'models/stories260K/greedy200.txt'

function New-TestFolder {
    $p = Join-Path ([System.IO.Path]::GetTempPath()) ("lorashell-pester-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $p | Out-Null
    $p
}

# Runs a script block and returns the ErrorRecord it throws (or fails the test if it does not throw).
function Get-ThrownError([scriptblock] $Script) {
    try { & $Script | Out-Null } catch { return $_ }
    throw "Expected an error, but the script completed."
}
