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
    It 'has a table view for every LoraShell type a cmdlet returns, and no view without a cmdlet' {
        [xml]$formats = Get-Content (Join-Path $RepoRoot 'module/LoraShell/LoraShell.format.ps1xml') -Raw
        $views = @($formats.Configuration.ViewDefinitions.View.ViewSelectedBy.TypeName)
        $outputs = @(Get-Command -Module LoraShell -CommandType Cmdlet | ForEach-Object { $_.OutputType.Name } |
            Where-Object { $_ -like 'LoraShell.*' } | Sort-Object -Unique)
        foreach ($type in $outputs) { $views | Should -Contain $type -Because "$type is a cmdlet's output" }
        foreach ($type in $views) { $outputs | Should -Contain $type -Because "the view for $type should serve some cmdlet" }
    }
    It 'completes -Method, -InitMethod, -Task and -Precision from their sets' {
        foreach ($case in @(
                @('Start-LoraTraining -Method L', @('Lora', 'Ladder')),
                @('Start-LoraTraining -Task C', @('Classification')),
                @('Add-LoraAdapter -InitMethod P', @('Pissa')),
                @('Measure-LoraMemory -Precision Int', @('Int8Base', 'Int4Base')))) {
            $line = $case[0]
            ((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Sort-Object) | Should -Be ($case[1] | Sort-Object)
        }
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
