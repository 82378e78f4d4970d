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
