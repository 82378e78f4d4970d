BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Root = New-TestFolder
    $script:Text = New-ShakespeareSample $Root
}
AfterAll { Remove-Item -Recurse -Force $Root -ErrorAction SilentlyContinue }

Describe 'Bad input ends in a named error and leaves what existed intact' {
    It 'names a truly good checkpoint (or none) after a NaN stop' {
        $out = Join-Path $Root 'nan'
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 2 | Start-LoraTraining -DataPath $Text -BatchSize 2 -SequenceLength 32 -MaxSteps 10 -LearningRate 1e10 -CheckpointEvery 2 -OutputPath $out }
        $e.FullyQualifiedErrorId | Should -BeLike 'NonFiniteLoss,*'
        $e.Exception.Message | Should -Match 'No checkpoint had finite weights|Last good checkpoint'
        foreach ($adapter in Get-ChildItem -Recurse -Filter adapter_model.safetensors $out -ErrorAction SilentlyContinue) {
            $m = Import-LoraModel $StoriesPath | Import-LoraAdapter $adapter.DirectoryName
            ($m | Measure-LoraPerplexity -Text 'To be, or not to be').Perplexity | Should -Not -Be ([double]::NaN)
        }
    }
    It 'refuses a used -OutputPath unless -Resume or -Force, also under -WhatIf' {
        $out = Join-Path $Root 'used'
        New-Item -ItemType Directory $out | Out-Null
        'keep me' | Set-Content (Join-Path $out 'notes.txt')
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $Text -MaxSteps 1 -BatchSize 2 -SequenceLength 32 -OutputPath $out -WhatIf }
        $e.FullyQualifiedErrorId | Should -BeLike 'OutputPathNotEmpty,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidOperation'
        Get-Content (Join-Path $out 'notes.txt') | Should -Be 'keep me'
        $r = Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $Text -MaxSteps 1 -BatchSize 2 -SequenceLength 32 -OutputPath $out -Force
        Test-Path (Join-Path $out 'notes.txt') | Should -BeFalse
        Test-Path $r.AdapterPath | Should -BeTrue
    }
    It 'refuses adapter names that cannot be folder names, before anything is written' {
        $m = Import-LoraModel $StoriesPath
        $e = Get-ThrownError { $m | Add-LoraAdapter -Name ('x' * 300) }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidAdapterName,*'
        $e = Get-ThrownError { $m | Add-LoraAdapter -Name "two`nlines" }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidAdapterName,*'
        $e.Exception.Message | Should -Not -Match "`n"
    }
    It 'names a rank pattern value that is not a number' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -RankPattern @{ v_proj = 'abc' } }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidRankPattern,*'
        $e.Exception.Message | Should -Match "v_proj"
    }
    It 'keeps an existing adapter folder when a -Force save fails' {
        $target = Join-Path $Root 'adapters'
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -InitMethod Random
        $m | Save-LoraAdapter -Path $target | Out-Null
        $before = Get-FileHash (Join-Path $target 'adapter_model.safetensors')
        $m | Add-LoraAdapter -Name second -InitMethod Random | Out-Null
        $e = Get-ThrownError { $m | Save-LoraAdapter -Path (Join-Path $target 'adapter_config.json/inside') -Force }
        $e.FullyQualifiedErrorId | Should -BeLike 'OutputPathNotWritable,*'
        (Get-FileHash (Join-Path $target 'adapter_model.safetensors')).Hash | Should -Be $before.Hash
    }
    It 'lists the error ids in about_LoraShell' {
        $about = Get-Help about_LoraShell | Out-String
        foreach ($id in 'NonFiniteLoss', 'OutputPathNotEmpty', 'InvalidAdapterName', 'NonFiniteWeights', 'WeightsDoNotMatchModel', 'InvalidSafetensors') {
            $about | Should -Match $id
        }
    }
}

Describe 'What a run cuts or doubts is a warning, visible without -Verbose (issue 32, classes 6 and 8)' {
    It 'warns about Latin-1 data, a context overrun and a validation split too short to score' {
        $latin = Join-Path $Root 'latin1.txt'
        [IO.File]::WriteAllBytes($latin, [Text.Encoding]::Latin1.GetBytes(('Déjà vu, café crème. ' * 400)))
        $short = Join-Path $Root 'short.txt'
        Set-Content -Path $short -Value 'Tiny.' -NoNewline
        $r = Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $latin -ValidationPath $short -MaxSteps 1 -BatchSize 1 -SequenceLength 600 -WarningVariable w -WarningAction SilentlyContinue
        $r | Should -BeOfType LoraShell.TrainingResult
        $text = @($w).Message -join "`n"
        $text | Should -Match 'is not valid UTF-8'
        $text | Should -Match "longer than the model's context \(max_position_embeddings 512\)"
        $text | Should -Match 'fewer than one window of -SequenceLength 600 \+ 1; no validation loss'
    }
    It 'warns when -WindowLength is cut to the context, and refuses to score a binary file' {
        $r = Import-LoraModel $StoriesPath | Measure-LoraPerplexity -Text ('Once upon a time. ' * 10) -WindowLength 100000 -WarningVariable w -WarningAction SilentlyContinue
        $r.Loss | Should -BeGreaterThan 0
        (@($w).Message -join "`n") | Should -Match '-WindowLength 100000 is longer than the model''s context \(max_position_embeddings 512\)'
        $bin = Join-Path $Root 'noise.bin'
        [IO.File]::WriteAllBytes($bin, [byte[]](1, 2, 0, 4, 5))
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Measure-LoraPerplexity -Path $bin }
        $e.FullyQualifiedErrorId | Should -BeLike 'DataNotText,*'
    }
}

Describe 'Save-LoraAdapter -Force replaces what LoraShell writes and keeps the rest (issue 32, class 9)' {
    It 'lists what goes under -WhatIf, then keeps the user''s files and removes only stale weights' {
        $target = Join-Path $Root 'kept'
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -InitMethod Random -Seed 1
        $m | Save-LoraAdapter -Path $target | Out-Null
        Set-Content -Path (Join-Path $target 'notes.md') -Value 'mine'
        Set-Content -Path (Join-Path $target 'adapter_model.bin') -Value 'stale'
        $whatIf = $m | Save-LoraAdapter -Path $target -Force -WhatIf -Verbose 4>&1 | Out-String
        $whatIf | Should -Match 'removes the other weight files \(adapter_model\.bin\) and keeps everything else \(notes\.md\)'
        Test-Path (Join-Path $target 'adapter_model.bin') | Should -BeTrue
        $m | Save-LoraAdapter -Path $target -Force | Out-Null
        Get-Content (Join-Path $target 'notes.md') | Should -Be 'mine'
        Test-Path (Join-Path $target 'adapter_model.bin') | Should -BeFalse
        @(Get-ChildItem -Force $Root -Filter '.kept*') | Should -BeNullOrEmpty
    }
}
