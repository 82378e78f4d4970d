BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestFolder
    $script:Data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
    $script:Base = Join-Path $Dir 'base'
    Import-LoraModel $StoriesPath | Export-LoraModel $Base | Out-Null
    $script:Ft = (Import-LoraModel $StoriesPath | Start-LoraTraining -Method Full -DataPath $Data -MaxSteps 8 -BatchSize 4 -SequenceLength 64 -LearningRate 2e-3 -MaxEvalWindows 2 -OutputPath (Join-Path $Dir 'ft')).ModelPath
    $script:Text = [System.IO.File]::ReadAllText($Data).Substring(1000000, 3000)
}
AfterAll { Remove-Item -Recurse -Force $Dir }

Describe 'Invoke-SvdDelta' {
    It 'writes one report per tensor, then a summary, and an adapter that merges back' {
        $out = @(Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'r8') -Rank 8)
        $reports = $out | Where-Object { $_ -is [LoraShell.SvdDeltaReport] }
        $summary = $out[-1]
        $summary.PSObject.TypeNames[0] | Should -Be 'LoraShell.SvdDeltaSummary'
        @($reports | Where-Object Status -eq 'Compressed').Count | Should -Be 35
        ($reports | Where-Object Status -eq 'Compressed' | ForEach-Object Rank | Sort-Object -Unique) | Should -Be 8
        $summary.CompressionRatio | Should -BeGreaterThan 1
        ($out | Format-Table | Out-String) | Should -Match 'RelError'

        $merged = Import-LoraModel $Base | Import-LoraAdapter (Join-Path $Dir 'r8') | Merge-LoraWeights
        $base = (Import-LoraModel $Base | Measure-LoraPerplexity -Text $Text).Loss
        $ftLoss = (Import-LoraModel $Ft | Measure-LoraPerplexity -Text $Text).Loss
        $mergedLoss = ($merged | Measure-LoraPerplexity -Text $Text).Loss
        [math]::Abs($mergedLoss - $ftLoss) | Should -BeLessThan ([math]::Abs($base - $ftLoss))
    }

    It 'charts spectra and errors offline' {
        $chart = Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'r4') -Rank 4 | Export-LoraChart -Path (Join-Path $Dir 'svd.html')
        $html = Get-Content -Raw $chart.FullName
        $html | Should -Match 'singular value index i'
        $html | Should -Match 'relative Frobenius error'
        # 35 matrices, 12 drawn: the chart says it shows a subset.
        $html | Should -Match 'showing the first 12 of 35 compressed matrices'
        $html | Should -Not -Match '<script[^>]*src\s*=\s*"?https?://'
    }

    It 'chooses per-matrix ranks by energy with the randomized method' {
        $reports = Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'e90') -EnergyThreshold 0.9 -MaxRank 16 -Method Randomized -Seed 1 |
            Where-Object { $_ -is [LoraShell.SvdDeltaReport] -and $_.Status -eq 'Compressed' }
        $reports | ForEach-Object { ($_.EnergyKept -ge 0.9 - 1e-9) -or ($_.Rank -eq 16) | Should -BeTrue }
        $config = Get-Content -Raw (Join-Path $Dir 'e90/adapter_config.json') | ConvertFrom-Json
        if (@($reports.Rank | Sort-Object -Unique).Count -gt 1) { $config.rank_pattern.PSObject.Properties.Count | Should -BeGreaterThan 0 }
    }

    It 'names bad input and writes nothing with -WhatIf' {
        $e = Get-ThrownError { Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'r8') -Rank 4 }
        $e.FullyQualifiedErrorId | Should -BeLike 'OutputPathExists,*'
        $e = Get-ThrownError { Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'big') -Rank 40 }
        $e.FullyQualifiedErrorId | Should -BeLike 'RankTooLarge,*'
        $e = Get-ThrownError { Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'bad') -EnergyThreshold 1.5 }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidThreshold,*'
        $e = Get-ThrownError { Invoke-SvdDelta -BasePath (Join-Path $Dir 'nope') -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'x') -Rank 2 }
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Invoke-SvdDelta -BasePath $Base -FineTunedPath $Ft -OutputPath (Join-Path $Dir 'whatif') -Rank 2 -WhatIf
        Test-Path (Join-Path $Dir 'whatif') | Should -BeFalse
    }

    It 'reports rank 0 for identical checkpoints' {
        $out = @(Invoke-SvdDelta -BasePath $Base -FineTunedPath $Base -OutputPath (Join-Path $Dir 'same') -Rank 2 -WarningAction SilentlyContinue)
        ($out | Where-Object { $_ -is [LoraShell.SvdDeltaReport] -and $_.Status -eq 'ZeroDelta' }).Count | Should -Be 35
        $out[-1].Matrices | Should -Be 0
        Test-Path (Join-Path $Dir 'same') | Should -BeFalse
    }

    It 'runs in parallel runspaces over several checkpoints' {
        $module = Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1'
        $base = $Base; $ft = $Ft; $dir = $Dir
        $summaries = 1..3 | ForEach-Object -Parallel {
            Import-Module $using:module
            Invoke-SvdDelta -BasePath $using:base -FineTunedPath $using:ft -OutputPath (Join-Path $using:dir "par$_") -Rank $_ -Method Randomized -Seed $_ |
                Select-Object -Last 1
        } -ThrottleLimit 3
        @($summaries).Count | Should -Be 3
        ($summaries.MaxRank | Sort-Object) | Should -Be @(1, 2, 3)
        1..3 | ForEach-Object { Test-Path (Join-Path $Dir "par$_/adapter_model.safetensors") | Should -BeTrue }
    }
}
