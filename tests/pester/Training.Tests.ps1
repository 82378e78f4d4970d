BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
    $script:Dir = New-TestFolder
}
AfterAll { Remove-Item -Recurse -Force $Dir }

Describe 'Start-LoraTraining | Export-LoraChart' {
    It 'writes the adapter, metrics.jsonl and an offline HTML chart' {
        $out = Join-Path $Dir 'run'
        $chart = Join-Path $Dir 'loss.html'
        $file = Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 8 -Alpha 16 |
            Start-LoraTraining -DataPath $Data -MaxSteps 12 -BatchSize 4 -SequenceLength 64 -LearningRate 5e-3 -MaxEvalWindows 16 -OutputPath $out |
            Export-LoraChart -Path $chart
        $file | Should -BeOfType [System.IO.FileInfo]
        Test-Path (Join-Path $out 'adapter/adapter_model.safetensors') | Should -BeTrue
        (Get-Content (Join-Path $out 'metrics.jsonl')).Count | Should -Be 13
        $html = Get-Content -Raw $chart
        $html | Should -Match 'Plotly'
        $html | Should -Not -Match '<script[^>]*src\s*=\s*"?https?://'
        $file.Length | Should -BeGreaterThan 1MB
    }

    It 'returns a typed result whose validation loss went down' {
        $r = Import-LoraModel $StoriesPath | Start-LoraTraining -Method Full -DataPath $Data -MaxSteps 15 -BatchSize 8 -SequenceLength 64 -LearningRate 2e-3 -MaxEvalWindows 16
        $r.PSObject.TypeNames[0] | Should -Be 'LoraShell.TrainingResult'
        $r.Steps | Should -Be 15
        $r.FinalValidationLoss | Should -BeLessThan $r.InitialValidationLoss
        $r.TrainableParameters | Should -Be 260032
        ($r | Format-Table | Out-String) | Should -Match 'Val after'
    }

    It 'stops cleanly on Stop (Ctrl+C) and leaves a checkpoint that resumes' {
        $out = Join-Path $Dir 'stopped'
        $ps = [powershell]::Create()
        $null = $ps.AddScript({
            param($module, $model, $data, $out)
            Import-Module $module
            Import-LoraModel $model | Add-LoraAdapter -Seed 1 | Start-LoraTraining -DataPath $data -MaxSteps 100000 -BatchSize 4 -SequenceLength 64 -MaxEvalWindows 4 -OutputPath $out
        }).AddArgument((Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1')).AddArgument($StoriesPath).AddArgument($Data).AddArgument($out)
        $handle = $ps.BeginInvoke()
        $metrics = Join-Path $out 'metrics.jsonl'
        $deadline = (Get-Date).AddSeconds(120)
        while ((Get-Date) -lt $deadline -and -not ((Test-Path $metrics) -and @(Get-Content $metrics).Count -ge 5)) { Start-Sleep -Milliseconds 200 }
        $ps.Stop()
        $ps.Dispose()
        $checkpoints = @(Get-ChildItem (Join-Path $out 'checkpoints') -Directory)
        $checkpoints.Count | Should -Be 1
        Test-Path (Join-Path $checkpoints[0].FullName 'trainer_state.json') | Should -BeTrue
        $done = [int]($checkpoints[0].Name -replace 'step-0*', '')
        $r = Import-LoraModel $StoriesPath | Add-LoraAdapter -Seed 1 | Start-LoraTraining -DataPath $Data -MaxSteps ($done + 2) -BatchSize 4 -SequenceLength 64 -MaxEvalWindows 4 -OutputPath $out -Resume
        $r.ResumedFromStep | Should -Be $done
        $r.Steps | Should -Be ($done + 2)
    }

    It 'names bad input' {
        $m = Import-LoraModel $StoriesPath
        (Get-ThrownError { $m | Start-LoraTraining -DataPath $Data -MaxSteps 2 -LearningRate 0 }).FullyQualifiedErrorId | Should -BeLike 'InvalidLearningRate,*'
        (Get-ThrownError { $m | Start-LoraTraining -DataPath $Data -MaxSteps 2 -OutputPath (Join-Path $Dir 'none') -Resume }).FullyQualifiedErrorId | Should -BeLike 'NoCheckpoint,*'
        $e = Get-ThrownError { $m | Start-LoraTraining -DataPath (Join-Path $Dir 'missing.txt') -MaxSteps 2 }
        $e.FullyQualifiedErrorId | Should -BeLike 'DataPathNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'writes nothing with -WhatIf' {
        $out = Join-Path $Dir 'whatif'
        Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $Data -MaxSteps 2 -OutputPath $out -WhatIf
        Test-Path $out | Should -BeFalse
    }
}

Describe 'Packing documents into windows (issue 27)' {
    It 'reads each JSONL record alone by default, and as one stream with -Packing Stream' {
        $jsonl = Join-Path $Dir 'records.jsonl'
        (Get-Content -Raw $Data).Substring(0, 30000) -split "`n`n" | Where-Object { $_.Trim() } | Select-Object -First 300 |
            ForEach-Object { @{ text = $_ } | ConvertTo-Json -Compress } | Set-Content $jsonl
        $settings = @{ DataPath = $jsonl; MaxSteps = 2; BatchSize = 4; SequenceLength = 64; MaxEvalWindows = 8; Seed = 1 }
        $verbose = Import-LoraModel $StoriesPath | Start-LoraTraining @settings -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | Out-String
        $verbose | Should -Match 'documents packed whole into [\d,]+ windows \(\d+% filled, the rest padding\), each read alone'
        $documents = Import-LoraModel $StoriesPath | Start-LoraTraining @settings
        $stream = Import-LoraModel $StoriesPath | Start-LoraTraining @settings -Packing Stream
        $documents.FinalValidationLoss | Should -Not -Be $stream.FinalValidationLoss
    }
}

Describe 'Ladder side-tuning from PowerShell' {
    It 'trains a side network and loads it back with -SideNetworkPath' {
        $out = Join-Path $Dir 'lst'
        $r = Import-LoraModel $StoriesPath | Start-LoraTraining -Method Ladder -ReductionFactor 4 -DataPath $Data -MaxSteps 15 -BatchSize 8 -SequenceLength 64 -LearningRate 5e-3 -MaxEvalWindows 16 -OutputPath $out
        $r.FinalValidationLoss | Should -BeLessThan $r.InitialValidationLoss
        $r.GateValues.Count | Should -Be 5
        $m = Import-LoraModel $StoriesPath -SideNetworkPath $r.SideNetworkPath
        $m.SideNetwork | Should -Match 'width 16'
        $text = [System.IO.File]::ReadAllText($Data).Substring(1000000, 2000)
        ($m | Measure-LoraPerplexity -Text $text).Loss | Should -BeLessThan ((Import-LoraModel $StoriesPath | Measure-LoraPerplexity -Text $text).Loss)
    }
    It 'names a reduction factor that does not fit' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Start-LoraTraining -Method Ladder -ReductionFactor 3 -DataPath $Data -MaxSteps 1 }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidReductionFactor,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
    }
}

Describe 'Sentence classification from PowerShell' {
    It 'trains on .tsv data, reports accuracy and writes the head' {
        $tsv = Join-Path $Dir 'words.tsv'
        $lines = 1..240 | ForEach-Object { if ($_ % 2) { "Tom was very happy at the park .`tpos" } else { "Lily was very sad in the house .`tneg" } }
        Set-Content -Path $tsv -Value (@("sentence`tlabel") + $lines)
        $out = Join-Path $Dir 'cls'
        $r = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules all-linear | Start-LoraTraining -DataPath $tsv -MaxSteps 30 -BatchSize 16 -SequenceLength 32 -LearningRate 1e-2 -OutputPath $out
        $r.Task | Should -Be 'Classification'
        $r.Labels | Should -Be @('neg', 'pos')
        $r.FinalValidationAccuracy | Should -Be 1
        (Join-Path $r.ClassifierPath 'score.safetensors') | Should -Exist
        ($r | Out-String -Width 200) | Should -Match '100.0 ?%'
    }
    It 'checkpoints and resumes classification like language modelling' {
        $tsv = Join-Path $Dir 'words-resume.tsv'
        $lines = 1..120 | ForEach-Object { if ($_ % 2) { "Tom was very happy at the park .`tpos" } else { "Lily was very sad in the house .`tneg" } }
        Set-Content -Path $tsv -Value (@("sentence`tlabel") + $lines)
        $out = Join-Path $Dir 'cls-resume'
        $first = Import-LoraModel $StoriesPath | Start-LoraTraining -Method Ladder -ReductionFactor 4 -DataPath $tsv -MaxSteps 6 -BatchSize 8 -SequenceLength 32 -LearningRate 1e-2 -CheckpointEvery 3 -OutputPath $out
        (Join-Path $out 'checkpoints/step-000003/classifier/score.safetensors') | Should -Exist
        # No checkpoint at the last step: -Resume starts again from step 3.
        $resumed = Import-LoraModel $StoriesPath | Start-LoraTraining -Method Ladder -ReductionFactor 4 -DataPath $tsv -MaxSteps 6 -BatchSize 8 -SequenceLength 32 -LearningRate 1e-2 -CheckpointEvery 3 -OutputPath $out -Resume
        $resumed.ResumedFromStep | Should -Be 3
        $resumed.Losses.Count | Should -Be 6
        foreach ($i in 0..5) { [math]::Abs($resumed.Losses[$i] - $first.Losses[$i]) | Should -BeLessThan 1e-4 }
        $resumed.FinalValidationAccuracy | Should -Be $first.FinalValidationAccuracy
    }
    It 'names the malformed line' {
        $tsv = Join-Path $Dir 'bad.tsv'
        Set-Content -Path $tsv -Value @("good`t1", 'no tab on this line', "bad`t0")
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $tsv -MaxSteps 1 }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidClassificationLine,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidData'
        $e.Exception.Message | Should -Match 'bad.tsv:2'
    }
}

Describe 'Export-LoraTrainingJob' {
    It 'writes a job Python compiles, under -WhatIf nothing, and says how to launch it' {
        $folder = New-TestFolder
        try {
            $model = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules all-linear -Rank 4
            $job = Join-Path $folder 'job'
            $model | Export-LoraTrainingJob -DataPath (New-ShakespeareSample $folder) -Path $job -ModelId my-org/stories260K-hf -MaxSteps 5 -WhatIf
            Test-Path $job | Should -BeFalse
            $result = $model | Export-LoraTrainingJob -DataPath (New-ShakespeareSample $folder) -Path $job -ModelId my-org/stories260K-hf -MaxSteps 5 -BatchSize 2 -SequenceLength 64
            $result.PSObject.TypeNames[0] | Should -Be 'LoraShell.TrainingJob'
            $result.Files | Should -Contain 'train.py'
            $result.Files | Should -Contain 'accelerate_config.yaml'
            ($result.Method, $result.Gpus, $result.Strategy, $result.TrainRecords) | Should -Be @('LoRA', 1, 'SingleGpu', 1)
            & /usr/bin/python3 -m py_compile (Join-Path $job 'train.py')
            $LASTEXITCODE | Should -Be 0
            (Get-Content -Raw (Join-Path $job 'train.py')) | Should -Match 'MODEL = "my-org/stories260K-hf"'
            ($result | Out-String -Width 80) | Should -Match 'accelerate launch --config_file accelerate_config.yaml train.py'
            (Get-ThrownError { $model | Export-LoraTrainingJob -DataPath (New-ShakespeareSample $folder) -Path $job -ModelId x -MaxSteps 5 }).FullyQualifiedErrorId | Should -Match '^OutputPathExists,'
        }
        finally { Remove-Item -Recurse -Force $folder }
    }

    It 'names what transformers cannot load, and refuses what the job cannot reproduce' {
        $folder = New-TestFolder
        try {
            $model = Import-LoraModel $StoriesPath
            $data = New-ShakespeareSample $folder
            $job = Join-Path $folder 'job'
            $e = Get-ThrownError { $model | Export-LoraTrainingJob -DataPath $data -Path $job -MaxSteps 5 }
            $e.FullyQualifiedErrorId | Should -Match '^ModelNotReadableByTransformers,'
            $e.Exception.Message | Should -Match 'tok512.bin'
            $e.Exception.Message | Should -Match '-ModelId'
            (Get-ThrownError { $model | Export-LoraTrainingJob -DataPath $data -Path $job -ModelId x -MaxSteps 5 -Strategy SingleGpu -Gpus 2 }).FullyQualifiedErrorId | Should -Match '^SingleGpuStrategyWithSeveralGpus,'
            (Get-ThrownError { $model | Export-LoraTrainingJob -DataPath (Join-Path $Shared 'data/sst2/validation.tsv') -Path $job -ModelId x -MaxSteps 5 }).FullyQualifiedErrorId | Should -Match '^JobTaskNotSupported,'
            $chat = Join-Path $folder 'chat.jsonl'
            Set-Content $chat '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'
            (Get-ThrownError { $model | Export-LoraTrainingJob -DataPath $chat -Path $job -ModelId x -MaxSteps 5 -ValidationFraction 0 }).FullyQualifiedErrorId | Should -Match '^NoChatTemplate,'
            Test-Path $job | Should -BeFalse
            # A model from a Hugging Face folder is read from there when no -ModelId is given.
            $hf = New-TinyFamilyModel 'llama' (Join-Path $folder 'tiny-llama')
            $fromFolder = Import-LoraModel $hf | Export-LoraTrainingJob -DataPath $data -Path $job -MaxSteps 5
            $fromFolder.Model | Should -Be (Resolve-Path $hf).Path
            $fromFolder.CarriesModel | Should -BeFalse
        }
        finally { Remove-Item -Recurse -Force $folder }
    }
}
