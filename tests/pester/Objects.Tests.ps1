BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestFolder
    $script:Data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
}
AfterAll { Remove-Item -Recurse -Force $Dir }

Describe 'Remove-LoraModel' {
    It 'frees a model, after which every use is a named error' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 2
        $m | Remove-LoraModel
        $m.Removed | Should -BeTrue
        "$m" | Should -Match 'removed'
        $e = Get-ThrownError { $m | Measure-LoraPerplexity -Text 'Once upon a time' }
        $e.FullyQualifiedErrorId | Should -BeLike 'ModelRemoved,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidOperation'
        $e.Exception.Message | Should -Match 'import it again'
        { $m | Remove-LoraModel } | Should -Not -Throw
    }
    It 'keeps the model under -WhatIf' {
        $m = Import-LoraModel $StoriesPath
        $m | Remove-LoraModel -WhatIf
        $m.Removed | Should -BeFalse
        ($m | Measure-LoraPerplexity -Text 'Once upon a time').Loss | Should -BeGreaterThan 0
    }
}

Describe 'Training talks while it works' {
    It 'says what it reads, loads and evaluates under -Verbose' {
        $m = Import-LoraModel $StoriesPath -Verbose 4>&1
        $loaded = @($m | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] })
        $model = $m | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
        ($loaded.Message -join "`n") | Should -Match 'Loaded .*stories260K\.bin.*260,032 parameters.*tokenizer'
        $out = $model | Start-LoraTraining -DataPath $Data -MaxSteps 2 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 2 -Verbose 4>&1
        $verbose = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
        $verbose | Should -Match 'Tokenizing input\.txt'
        $verbose | Should -Match 'Data: [\d,]+ training tokens'
        @($out | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] })[0].Steps | Should -Be 2
    }
}

Describe 'Objects a script can rely on' {
    It 'names the evaluation type, charts a result.json read back, and returns written files as provider items' {
        $out = Join-Path $Dir 'run'
        $r = Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $Data -MaxSteps 2 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 2 -OutputPath $out
        $r.Evaluations[0] | Should -BeOfType ([LoraShell.TrainingEvaluation])
        $r.Evaluations[0].Step | Should -Be 0
        $saved = Get-Content (Join-Path $out 'result.json') -Raw | ConvertFrom-Json
        $chart = $saved | Export-LoraChart -Path (Join-Path $Dir 'from-json.html')
        $chart.FullName | Should -Exist
        $chart.PSParentPath | Should -Not -BeNullOrEmpty
        (Get-Content $chart.FullName -Raw) | Should -Match 'Lora validation'
        $folder = Import-LoraModel $StoriesPath | Export-LoraModel -Path (Join-Path $Dir 'hf')
        $folder.PSIsContainer | Should -BeTrue
        ($folder | Format-Table | Out-String) | Should -Match 'hf'
    }
}

Describe 'Typed properties' {
    It 'gives methods, tasks, statuses and precisions as enums and a shape as an int array' {
        $r = Import-LoraModel $StoriesPath | Start-LoraTraining -Method Full -DataPath $Data -MaxSteps 1 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 1 -OutputPath (Join-Path $Dir 'ft')
        $r.Method | Should -BeOfType ([LoraShell.Core.Training.TrainingMethod])
        $r.Method | Should -Be Full
        $r.Task | Should -Be ([LoraShell.Core.Training.TrainingTask]::LanguageModeling)
        Import-LoraModel $StoriesPath | Export-LoraModel -Path (Join-Path $Dir 'b0') | Out-Null
        $rows = Invoke-SvdDelta -BasePath (Join-Path $Dir 'b0') -FineTunedPath $r.ModelPath -OutputPath (Join-Path $Dir 'delta') -Rank 2 |
            Where-Object { $_ -is [LoraShell.SvdDeltaReport] }
        $down = $rows | Where-Object Name -eq 'model.layers.0.mlp.down_proj.weight'
        $down.Status | Should -Be ([LoraShell.Core.Delta.DeltaStatus]::Compressed)
        $down.Method | Should -Be ([LoraShell.Core.Delta.SvdMethod]::Exact)
        , $down.Shape | Should -BeOfType ([int[]])
        $down.Shape | Should -Be @(64, 172)
        ($rows | Where-Object Name -eq 'model.norm.weight').Shape | Should -Be @(64)
        # The table view still reads "out x in".
        ($down | Format-Table | Out-String -Width 80) | Should -Match '64 x 172'
        $est = Measure-LoraMemory -Preset Llama-2-7B -Method Lora -Precision Bf16Mixed
        $est.Method | Should -BeOfType ([LoraShell.Core.Training.TrainingMethod])
        $est.Precision | Should -Be ([LoraShell.Core.Memory.TrainingPrecision]::Bf16Mixed)
    }
}

Describe 'Set, Enable, Disable and Remove-LoraAdapter' {
    It 'write nothing by default and the model with -PassThru' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name a | Add-LoraAdapter -Name b
        $m | Set-LoraAdapter -Name a | Should -BeNullOrEmpty
        $m | Disable-LoraAdapter | Should -BeNullOrEmpty
        $m | Enable-LoraAdapter | Should -BeNullOrEmpty
        $m | Remove-LoraAdapter -Name b -WhatIf | Should -BeNullOrEmpty
        foreach ($passed in @(
                ($m | Set-LoraAdapter -Name a -PassThru),
                ($m | Disable-LoraAdapter -PassThru),
                ($m | Enable-LoraAdapter -PassThru),
                ($m | Remove-LoraAdapter -Name b -PassThru))) {
            [object]::ReferenceEquals($passed, $m) | Should -BeTrue
        }
        $m.Adapters | Should -Be @('a')
    }
}

Describe 'Adapter name completion' {
    BeforeAll {
        $script:Model = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name alpha | Add-LoraAdapter -Name beta -TargetModules o_proj
        function Complete([string] $Line) { (TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches }
    }
    It 'offers the adapters of the model in -Model or piped from a variable, with rank and targets' {
        (Complete 'Set-LoraAdapter -Model $Model -Name ').CompletionText | Should -Be @('alpha', 'beta')
        $b = Complete '$Model | Remove-LoraAdapter -Name b'
        $b.CompletionText | Should -Be @('beta')
        $b.ToolTip | Should -Match 'r 8, alpha 8, o_proj, active'
        (Complete '$Model | Get-LoraAdapter -Name a').CompletionText | Should -Be @('alpha')
        (Complete '$Model | Save-LoraAdapter -Path x -Name ').CompletionText | Should -Be @('alpha', 'beta')
        (Complete '$Model | Start-LoraTraining -AdapterName ').CompletionText | Should -Be @('alpha', 'beta')
    }
    It 'offers no file names when no model is in sight' {
        New-Item -ItemType File -Path (Join-Path $Dir 'alpha.txt') -Force | Out-Null
        Push-Location $Dir
        try { Complete 'Set-LoraAdapter -Name ' | Should -BeNullOrEmpty }
        finally { Pop-Location }
    }
}

Describe 'Charts a reader trusts' {
    It 'gives bars a titled value axis, error bars for their spread and a named baseline' {
        $file = @(
            [pscustomobject]@{ Name = 'Full'; Value = 0.706; Low = 0.69; High = 0.72 }
            [pscustomobject]@{ Name = 'LoRA'; Value = 0.697 }
        ) | Export-LoraChart -Path (Join-Path $Dir 'bars.html') -Title 'SST-2' -YAxisTitle 'accuracy' -Baseline 0.554 -BaselineName 'before training'
        $html = Get-Content -Raw $file.FullName
        $html | Should -Match '"error_y":\{[^}]*"symmetric":false'
        $html | Should -Match 'before training \(0\.554\)'
        $html | Should -Match '"title":\{"text":"accuracy"'
        $html | Should -Match 'lowest to highest measurement'
        $e = Get-ThrownError { [pscustomobject]@{ Name = 'a'; Value = 1; Low = 'low' } | Export-LoraChart -Path (Join-Path $Dir 'bad.html') }
        $e.FullyQualifiedErrorId | Should -BeLike 'UnsupportedChartInput,*'
        $e.Exception.Message | Should -Match "Low should be a number"
    }
    It 'draws a run''s training and validation loss in one colour, the next run in another, with the baseline' {
        $runs = 1, 2 | ForEach-Object {
            Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $Data -MaxSteps 2 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 1 -EvalEvery 1 -Seed $_
        }
        $file = $runs | Export-LoraChart -Path (Join-Path $Dir 'two-runs.html') -Baseline $runs[0].InitialValidationLoss -BaselineName 'untrained'
        $html = Get-Content -Raw $file.FullName
        $html | Should -Match '"title":\{"text":"optimizer step"'
        $html | Should -Match 'mean token loss \(nats\)'
        $html | Should -Match 'untrained \('
        # Each trace's JSON names it and then gives its line colour.
        function ColorOf([string] $name) { [regex]::Match($html, [regex]::Escape("`"name`":`"$name`"") + '.*?"color":"(rgba\([^)]*\))"').Groups[1].Value }
        ColorOf '1. Lora train' | Should -Not -BeNullOrEmpty
        ColorOf '1. Lora validation' | Should -Be (ColorOf '1. Lora train')
        ColorOf '2. Lora train' | Should -Not -Be (ColorOf '1. Lora train')
    }
}
