BeforeDiscovery {
    $root = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:Notebooks = Get-ChildItem (Join-Path $root 'notebooks') -Filter *.ipynb | ForEach-Object { @{ Name = $_.BaseName; Path = $_.FullName; Root = $root } }
}

Describe 'Notebook <Name> and its twin' -ForEach $Notebooks {
    BeforeAll {
        $nb = Get-Content $Path -Raw | ConvertFrom-Json
        $script:Code = ($nb.cells | Where-Object cell_type -eq 'code' | ForEach-Object { $_.source -join '' }) -join "`n"
        $powerShell = $nb.metadata.kernelspec.language -eq 'PowerShell'
        # A C# notebook's twin is a `dotnet run` file; a PowerShell notebook's a script.
        $script:Twin = Join-Path $Root "samples/$Name.$(if ($powerShell) { 'ps1' } else { 'cs' })"
        # Entry points: the library's experiments and their charts, or the module's cmdlets.
        $pattern = if ($powerShell) { '\b[A-Z][a-z]+-(?:Lora[A-Za-z]+|SvdDelta)\b' } else { '\b(?:LoraExperiments|LadderExperiments|SvdExperiments|T5Experiments|ExperimentCharts)\.\w+' }
        $script:Calls = { param($text) [regex]::Matches($text, $pattern) | ForEach-Object Value | Sort-Object -Unique }.GetNewClosure()
    }

    It 'has a twin under samples/' {
        $Twin | Should -Exist
    }

    It 'calls the same library entry points as the twin' {
        $notebookCalls = & $Calls $Code
        $twinCalls = & $Calls (Get-Content $Twin -Raw)
        $notebookCalls | Should -Not -BeNullOrEmpty
        $notebookCalls | Should -Be $twinCalls
    }

    It 'keeps cells short: no cell has more than a few lines of logic' {
        $nb = Get-Content $Path -Raw | ConvertFrom-Json
        foreach ($cell in $nb.cells | Where-Object cell_type -eq 'code') {
            $lines = ($cell.source -join '') -split "`n" | Where-Object { $_.Trim() -and -not $_.Trim().StartsWith('//') }
            $lines.Count | Should -BeLessOrEqual 16
        }
    }

    It 'was committed with outputs and no errors' {
        $nb = Get-Content $Path -Raw | ConvertFrom-Json
        $outputs = $nb.cells | Where-Object cell_type -eq 'code' | ForEach-Object { $_.outputs }
        $outputs | Should -Not -BeNullOrEmpty
        $outputs | Where-Object output_type -eq 'error' | Should -BeNullOrEmpty
        $nb.cells | Where-Object cell_type -eq 'code' | ForEach-Object { $_.outputs | Where-Object { $_.data.'text/html' -match 'data:image/png' } } | Should -Not -BeNullOrEmpty
    }
}
