BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Cmdlets = Get-Command -Module LoraShell -CommandType Cmdlet | ForEach-Object { @{ Name = $_.Name } }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
}

Describe 'Module manifest' {
    It 'exports exactly the cmdlets it lists' {
        $manifest = Import-PowerShellDataFile (Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1')
        $exported = (Get-Command -Module LoraShell -CommandType Cmdlet).Name | Sort-Object
        $exported | Should -Be ($manifest.CmdletsToExport | Sort-Object)
        $manifest.CompatiblePSEditions | Should -Be @('Core')
        [version]$manifest.PowerShellVersion | Should -BeGreaterOrEqual ([version]'7.4')
    }
    It 'has an about topic' {
        (Get-Help about_LoraShell | Out-String) | Should -Match 'LoraShell adapts'
    }
}

Describe 'Help for <Name>' -ForEach $Cmdlets {
    BeforeAll { $script:Help = Get-Help $Name -Full; $script:Command = Get-Command $Name }
    It 'has a synopsis and a description' {
        $Help.Synopsis | Should -Not -BeNullOrEmpty
        $Help.Synopsis | Should -Not -Match '^\s*\w+-\w+\s*\['  # not the auto-generated syntax stub
        ($Help.description.Text -join ' ') | Should -Not -BeNullOrEmpty
    }
    It 'documents every parameter' {
        $documented = @($Help.parameters.parameter | Where-Object { ($_.description.Text -join '').Trim() }).name
        foreach ($p in $Command.Parameters.Keys | Where-Object { $_ -notin $Common }) {
            $documented | Should -Contain $p -Because "-$p needs help text"
        }
    }
    It 'has at least two examples that run' {
        $examples = @($Help.examples.example)
        $examples.Count | Should -BeGreaterOrEqual 2
        # Examples use ./shared/... and write under ./out: run them in a scratch folder that links shared.
        $scratch = New-TestFolder
        New-Item -ItemType SymbolicLink -Path (Join-Path $scratch 'shared') -Target $Shared | Out-Null
        Push-Location $scratch
        try {
            foreach ($e in $examples) {
                { [scriptblock]::Create($e.code).Invoke() | Out-Null } | Should -Not -Throw -Because $e.code
            }
        }
        finally { Pop-Location; Remove-Item -Recurse -Force $scratch }
    }
}
