# The module as a user meets it (issue 30): a PSResourceGet package without libtorch, published to a local
# repository and installed with Install-PSResource into a fresh HOME, fetches libtorch from the package
# sources of that HOME's NuGet.Config on first use (here a local folder feed: the global packages folder
# that holds the restored libtorch-cpu-linux-x64 2.10.0), then uses the cache. Each step runs in a pwsh
# of its own, as a new session would.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Work = New-TestFolder
    $script:Repository = Join-Path $Work 'repository'
    & bash (Join-Path $RepoRoot 'module/package.sh') --no-build $Repository | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "module/package.sh failed ($LASTEXITCODE)" }
    $script:Package = Join-Path $RepoRoot 'out/package/LoraShell'
    $script:GlobalPackages = ((& dotnet nuget locals global-packages --list) -replace '^global-packages: ', '').Trim()
    $script:Pwsh = (Get-Command pwsh -CommandType Application | Select-Object -First 1).Source

    # A HOME of its own whose NuGet.Config lists only $Source, with LoraShell installed from the repository.
    function New-UserHome([string] $Name, [string] $Source) {
        $home_ = Join-Path $Work $Name
        New-Item -ItemType Directory -Force (Join-Path $home_ '.nuget/NuGet') | Out-Null
        Set-Content (Join-Path $home_ '.nuget/NuGet/NuGet.Config') @"
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="test-feed" value="$Source" />
  </packageSources>
</configuration>
"@
        Invoke-AsUser $home_ @"
Register-PSResourceRepository -Name local -Uri '$Repository' -Trusted
Install-PSResource LoraShell -Repository local -Scope CurrentUser -TrustRepository -Quiet
"@ | Out-Null
        $home_
    }

    # Runs a script in a new pwsh with HOME (and so the NuGet.Config, module path and cache) set to $UserHome;
    # returns everything it printed, warnings included.
    function Invoke-AsUser([string] $UserHome, [string] $Script) {
        $saved = $env:HOME, $env:XDG_CACHE_HOME, $env:PSModulePath
        try {
            $env:HOME = $UserHome; $env:XDG_CACHE_HOME = $null; $env:PSModulePath = $null
            $output = & $Pwsh -NoProfile -NonInteractive -Command "`$ErrorActionPreference = 'Stop'; `$WarningPreference = 'Continue'; $Script" 2>&1 | Out-String
            [pscustomobject]@{ Output = $output; ExitCode = $LASTEXITCODE }
        }
        finally { $env:HOME, $env:XDG_CACHE_HOME, $env:PSModulePath = $saved }
    }

    $script:Greedy = @"
Import-Module LoraShell
`$text = Import-LoraModel '$StoriesPath' | Invoke-LoraGeneration -Temperature 0 -MaxTokens 200
[IO.File]::WriteAllText((Join-Path `$HOME 'greedy.txt'), `$text + "``n")
Get-LoraBackend | ForEach-Object { 'backend: {0} {1} {2}' -f `$_.Source, `$_.Loaded, `$_.Folder }
"@
}
AfterAll { Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue }

Describe 'The LoraShell package' {
    It 'carries the managed assemblies and a LibTorchSharp shim per platform, no libtorch, in well under 50 MB' {
        $bin = Join-Path $Package 'bin'
        foreach ($shim in 'libLibTorchSharp.so', 'LibTorchSharp.dll', 'libLibTorchSharp.dylib', 'TorchSharp.dll', 'LoraShell.dll', 'LoraShell.Core.dll') {
            Join-Path $bin $shim | Should -Exist
        }
        @(Get-ChildItem $bin | Where-Object Name -cmatch '^(libtorch|libc10|libgomp)') | Should -BeNullOrEmpty
        $size = (Get-ChildItem $Package -Recurse -File | Measure-Object Length -Sum).Sum
        $size | Should -BeLessThan 50MB
        $nupkg = @(Get-ChildItem $Repository -Filter 'LoraShell.*.nupkg')
        $nupkg.Count | Should -Be 1
        $nupkg[0].Length | Should -BeLessThan 50MB
    }
}

Describe 'Installed with Install-PSResource' {
    BeforeAll { $script:User = New-UserHome 'user' $GlobalPackages }

    It 'fetches libtorch from the configured feed on first use, saying what and how big, and decodes stories260K byte for byte' {
        $first = Invoke-AsUser $User $Greedy
        $first.ExitCode | Should -Be 0 -Because $first.Output
        $first.Output | Should -Match 'Fetching libtorch-cpu-linux-x64 2\.10\.0 \(\d[\d.,]* MiB\) from'
        [IO.File]::ReadAllText((Join-Path $User 'greedy.txt')) | Should -BeExactly ([IO.File]::ReadAllText($Greedy200))
        $first.Output | Should -Match ([regex]::Escape("backend: Cache True $User/.cache/LoraShell/libtorch/2.10.0-cpu-linux-x64"))
    }

    It 'uses the cache the second time and fetches nothing' {
        Remove-Item (Join-Path $User 'greedy.txt')
        $second = Invoke-AsUser $User $Greedy
        $second.ExitCode | Should -Be 0 -Because $second.Output
        $second.Output | Should -Not -Match 'Fetching'
        [IO.File]::ReadAllText((Join-Path $User 'greedy.txt')) | Should -BeExactly ([IO.File]::ReadAllText($Greedy200))
    }

    It 'detects a truncated library in the cache, names the command that repairs it, and -Force repairs it' {
        $c10 = Join-Path $User '.cache/LoraShell/libtorch/2.10.0-cpu-linux-x64/libc10.so'
        $bytes = [IO.File]::ReadAllBytes($c10)
        [IO.File]::WriteAllBytes($c10, $bytes[0..4095])
        $damaged = Invoke-AsUser $User "Import-Module LoraShell; Import-LoraModel '$StoriesPath'"
        $damaged.ExitCode | Should -Not -Be 0
        $damaged.Output | Should -Match 'libc10\.so is 4,096 bytes'
        $damaged.Output | Should -Match 'Install-LoraBackend -Force'
        $repaired = Invoke-AsUser $User "Import-Module LoraShell; Install-LoraBackend -Force | Out-Null; $Greedy"
        $repaired.ExitCode | Should -Be 0 -Because $repaired.Output
        (Get-Item $c10).Length | Should -Be $bytes.Length
        [IO.File]::ReadAllText((Join-Path $User 'greedy.txt')) | Should -BeExactly ([IO.File]::ReadAllText($Greedy200))
    }

    It 'uses a local libtorch 2.10 in place, and refuses another version by name' {
        $cache = Join-Path $User '.cache/LoraShell/libtorch/2.10.0-cpu-linux-x64'
        foreach ($version in '2.10.0+cpu', '2.9.1+cpu') {
            $local = Join-Path $Work "libtorch-$version/libtorch"
            New-Item -ItemType Directory -Force (Join-Path $local 'lib') | Out-Null
            Get-ChildItem $cache -Filter '*.so*' | ForEach-Object { New-Item -ItemType SymbolicLink -Path (Join-Path $local "lib/$($_.Name)") -Target $_.FullName | Out-Null }
            Set-Content (Join-Path $local 'build-version') $version
        }
        $wrong = Invoke-AsUser $User "Import-Module LoraShell; Install-LoraBackend -Path '$Work/libtorch-2.9.1+cpu'"
        $wrong.Output | Should -Match 'version 2\.9\.1\+cpu'
        $wrong.Output | Should -Match 'libtorch 2\.10\.0'
        $right = Invoke-AsUser $User "Import-Module LoraShell; Install-LoraBackend -Path '$Work/libtorch-2.10.0+cpu' | Out-Null; $Greedy"
        $right.ExitCode | Should -Be 0 -Because $right.Output
        $right.Output | Should -Match ([regex]::Escape("backend: Path True $Work/libtorch-2.10.0+cpu/libtorch/lib"))
        [IO.File]::ReadAllText((Join-Path $User 'greedy.txt')) | Should -BeExactly ([IO.File]::ReadAllText($Greedy200))
    }
}

Describe 'Without a reachable feed and without a cache' {
    It 'says which sources failed and which command installs libtorch, and leaves no half-filled cache' {
        $offline = New-UserHome 'offline' 'http://127.0.0.1:9/v3/index.json'
        $result = Invoke-AsUser $offline "Import-Module LoraShell; Import-LoraModel '$StoriesPath'"
        $result.ExitCode | Should -Not -Be 0
        $result.Output | Should -Match 'libtorch-cpu-linux-x64 2\.10\.0 could not be fetched'
        $result.Output | Should -Match '127\.0\.0\.1:9'
        $result.Output | Should -Match 'Install-LoraBackend'
        @(Get-ChildItem (Join-Path $offline '.cache/LoraShell/libtorch') -ErrorAction SilentlyContinue | Where-Object Name -like '2.10.0-*') | Should -BeNullOrEmpty
    }

    It 'shows the restore plan for the CUDA and Windows builds it cannot run here' {
        $plan = Invoke-AsUser (Join-Path $Work 'user') 'Import-Module LoraShell; Install-LoraBackend -Backend Cuda -Platform win-x64 -WhatIf; Install-LoraBackend -Backend Cpu -Platform osx-arm64 -WhatIf'
        $plan.Output | Should -Match 'libtorch-cuda-12\.8-win-x64 2\.10\.0'
        $plan.Output | Should -Match '2\.10\.0-cuda-12\.8-win-x64'
        $plan.Output | Should -Match 'libtorch-cpu-osx-arm64 2\.10\.0'
        $plan.Output | Should -Match 'test-feed'
    }
}
