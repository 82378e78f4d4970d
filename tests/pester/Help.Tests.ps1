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
    It 'states the PowerShell its .NET needs, a license, platform tags and current release notes' {
        $folder = Join-Path $RepoRoot 'module/LoraShell'
        $manifest = Import-PowerShellDataFile (Join-Path $folder 'LoraShell.psd1')
        # The assemblies' .NET is what matters: pwsh 7.6 runs on .NET 10, and .NET Interactive hosts the 7.5 SDK
        # on .NET 10. The manifest states 7.5 and the init script refuses a runtime older than the target.
        $target = [System.Reflection.Assembly]::LoadFile((Join-Path $folder 'bin/LoraShell.dll')).GetCustomAttributes([System.Runtime.Versioning.TargetFrameworkAttribute], $false)[0].FrameworkName
        $dotnet = [version]($target -replace '^.*Version=v', '')
        $manifest.PowerShellVersion | Should -Be '7.5'
        $manifest.ScriptsToProcess | Should -Contain 'LoraShell.Init.ps1'
        Get-Content (Join-Path $folder 'LoraShell.Init.ps1') -Raw | Should -Match ([regex]::Escape("Version.Major -lt $($dotnet.Major)")) -Because "the module targets $target"
        Join-Path $folder 'LICENSE' | Should -Exist
        Get-Content (Join-Path $folder 'LICENSE') -Raw | Should -Match 'MIT License'
        $manifest.PrivateData.PSData.Tags | Should -Contain 'PSEdition_Core'
        $manifest.PrivateData.PSData.Tags | Should -Contain 'Linux'
        $manifest.PrivateData.PSData.ReleaseNotes | Should -Match ([regex]::Escape($manifest.ModuleVersion))
        # No resource folders for languages the module does not speak (FSharp.Core brought 13).
        @(Get-ChildItem (Join-Path $folder 'bin') -Directory | Where-Object { $_.Name -match '^[a-z]{2}(-[A-Za-z]+)?$' }).Name | Should -BeNullOrEmpty
    }
    It 'shows -WhatIf and -Confirm in the syntax, real defaults, pipeline input and wildcard support' {
        $syntax = (Get-Help Export-LoraModel).syntax | Out-String -Width 300
        $syntax | Should -Match '\[-WhatIf\]'
        $syntax | Should -Match '\[-Confirm\]'
        $rank = (Get-Help Add-LoraAdapter -Parameter Rank)
        $rank.defaultValue | Should -Be ([LoraShell.PowerShell.AddLoraAdapterCommand]::new().Rank)
        (Get-Help Start-LoraTraining -Parameter Method).defaultValue | Should -Be 'Lora'
        (Get-Help Start-LoraTraining -Parameter WhatIf).defaultValue | Should -Be 'False'
        (Get-Help Add-LoraAdapter).inputTypes.inputType.type.name | Should -Contain 'LoraShell.LoraModel'
        (Get-Help Import-LoraModel -Parameter Path).globbing | Should -Be 'true'
        (Get-Help Import-LoraModel -Parameter LiteralPath).globbing | Should -Be 'false'
        (Get-Help Import-LoraModel -Parameter DType).globbing | Should -Be 'false'
    }
    It 'has a table view for every LoraShell type a cmdlet returns, and no view without a cmdlet' {
        [xml]$formats = Get-Content (Join-Path $RepoRoot 'module/LoraShell/LoraShell.format.ps1xml') -Raw
        $views = @($formats.Configuration.ViewDefinitions.View.ViewSelectedBy.TypeName)
        $outputs = @(Get-Command -Module LoraShell -CommandType Cmdlet | ForEach-Object { $_.OutputType.Name } |
            Where-Object { $_ -like 'LoraShell.*' } | Sort-Object -Unique)
        foreach ($type in $outputs) { $views | Should -Contain $type -Because "$type is a cmdlet's output" }
        # Types that cmdlets return inside their outputs (TrainingResult.Evaluations) have views too.
        $nested = @('LoraShell.TrainingEvaluation')
        foreach ($type in $views) { ($outputs + $nested) | Should -Contain $type -Because "the view for $type should serve some cmdlet" }
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
    It 'has at least two examples that run and print what the help says they print' {
        $examples = @($Help.examples.example)
        $examples.Count | Should -BeGreaterOrEqual 2
        # The attributes are the source; the help file must carry them as they are (build-help.ps1 regenerates it).
        $declared = @($Command.ImplementingType.GetCustomAttributes([LoraShell.PowerShell.CmdletExampleAttribute], $false))
        @($examples.code) | Should -Be @($declared.Code) -Because 'the help file is generated from [CmdletExample]; run module/build.sh'
        # Examples run from a repository root, with shared/ beside it (../shared/...), and write under ./out:
        # run them in a scratch "repository" folder whose sibling links shared.
        $scratch = New-TestFolder
        New-Item -ItemType SymbolicLink -Path (Join-Path $scratch 'shared') -Target $Shared | Out-Null
        New-Item -ItemType Directory -Path (Join-Path $scratch 'repo') | Out-Null
        Push-Location (Join-Path $scratch 'repo')
        try {
            foreach ($e in $declared) {
                $script:printed = $null
                { $script:printed = [scriptblock]::Create($e.Code).Invoke() | Out-String -Width 80 } | Should -Not -Throw -Because $e.Code
                if ($e.Output) { Assert-SameOutput -Actual $script:printed -Expected $e.Output -Because $e.Code }
            }
        }
        finally { Pop-Location; Remove-Item -Recurse -Force $scratch }
    }
    It 'shows each example''s output after its remarks' {
        foreach ($e in @($Command.ImplementingType.GetCustomAttributes([LoraShell.PowerShell.CmdletExampleAttribute], $false)) | Where-Object Output) {
            $shown = @($Help.examples.example | Where-Object code -eq $e.Code)[0]
            (@($shown.remarks.Text) -join "`n") | Should -Match ([regex]::Escape(($e.Output -split "`n")[0].TrimEnd()))
        }
    }
}

Describe 'about_LoraShell' {
    BeforeAll { $script:About = Get-Content (Join-Path $RepoRoot 'module/LoraShell/en-US/about_LoraShell.help.txt') }
    It 'fits 80 columns' {
        @($About | Where-Object { $_.Length -gt 80 }) | Should -BeNullOrEmpty
    }
    It 'names every exported cmdlet and lists each error id once' {
        $text = $About -join "`n"
        foreach ($c in (Get-Command -Module LoraShell -CommandType Cmdlet).Name) { $text | Should -Match ([regex]::Escape($c)) -Because "$c should be introduced" }
        $start = [array]::IndexOf($About, '    ERROR IDS')
        $end = $start + 1
        while ($end -lt $About.Count -and $About[$end] -cnotmatch '^(    )?[A-Z][A-Z ]+$') { $end++ }
        $ids = @($About[($start + 1)..($end - 1)] | Where-Object { $_ -match '^        \w' } | ForEach-Object { $_.Trim().TrimEnd(',') -split ',\s*' })
        $ids.Count | Should -BeGreaterThan 100
        @($ids | Group-Object | Where-Object Count -gt 1).Name | Should -BeNullOrEmpty
        $ids | Should -Contain 'InvalidRankPattern'
        @([regex]::Matches($text, 'Every error LoraShell raises')).Count | Should -Be 1
    }
}
