BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Model = Import-LoraModel -Path $StoriesPath
}

Describe 'Import-LoraModel | Invoke-LoraGeneration' {
    It 'reproduces llama2.c greedy output byte for byte' {
        $text = Import-LoraModel -Path $StoriesPath | Invoke-LoraGeneration -Temperature 0 -MaxTokens 200
        $text | Should -BeOfType [string]
        ($text + "`n") | Should -BeExactly ([System.IO.File]::ReadAllText($Greedy200))
    }

    It 'returns a typed model handle that exposes no TorchSharp type' {
        $Model.PSObject.TypeNames[0] | Should -Be 'LoraShell.LoraModel'
        $Model.Parameters | Should -Be 260032
        $Model.Layers | Should -Be 5
        $Model.LinearModules | Should -Contain 'model.layers.0.self_attn.q_proj'
        $Model.LinearModules.Count | Should -Be 35
        foreach ($p in $Model.PSObject.Properties) { $p.TypeNameOfValue | Should -Not -Match 'TorchSharp' }
    }

    It 'samples reproducibly with -Seed' {
        $a = $Model | Invoke-LoraGeneration -Prompt 'The cat' -MaxTokens 30 -Temperature 1 -Seed 11
        $b = $Model | Invoke-LoraGeneration -Prompt 'The cat' -MaxTokens 30 -Temperature 1 -Seed 11
        $a | Should -BeExactly $b
        $a | Should -BeLike 'The cat*'
    }

    It 'reports details with -Detailed' {
        $r = $Model | Invoke-LoraGeneration -Prompt 'Lily' -MaxTokens 12 -Temperature 0 -Detailed
        $r.PSObject.TypeNames[0] | Should -Be 'LoraShell.GenerationReport'
        $r.GeneratedTokens | Should -BeLessOrEqual 12
        $r.Text | Should -BeLike 'Lily*'
    }

    It 'loads bfloat16 on request' {
        $bf = Import-LoraModel -Path $StoriesPath -DType bfloat16
        $bf.DType | Should -Be 'bfloat16'
        ($bf | Invoke-LoraGeneration -Temperature 0 -MaxTokens 5).Length | Should -BeGreaterThan 5
    }
}

Describe 'Paths resolve against the PowerShell location' {
    It 'accepts a relative path after Set-Location' {
        Push-Location (Split-Path $StoriesPath)
        try { (Import-LoraModel ./stories260K.bin).Name | Should -Be 'stories260K.bin' }
        finally { Pop-Location }
    }
    It 'expands a wildcard that matches one file' {
        (Import-LoraModel -Path (Join-Path (Split-Path $StoriesPath) 'stories260K.b?n')).Name | Should -Be 'stories260K.bin'
    }
    It 'takes -LiteralPath literally' {
        $e = Get-ThrownError { Import-LoraModel -LiteralPath (Join-Path (Split-Path $StoriesPath) 'stories260K.b?n') }
        $e.FullyQualifiedErrorId | Should -BeLike 'ModelNotFound,*'
    }
}

Describe 'Measure-LoraPerplexity' {
    It 'scores text with the project loss definition' {
        $r = $Model | Measure-LoraPerplexity -Text 'Once upon a time, there was a little girl named Lily.'
        $r.PSObject.TypeNames[0] | Should -Be 'LoraShell.PerplexityReport'
        $r.Perplexity | Should -BeGreaterThan 1
        [math]::Exp($r.Loss) | Should -BeGreaterOrEqual ($r.Perplexity * 0.999999)
        $r.Tokens | Should -BeGreaterThan 10
    }
    It 'scores files, one report per wildcard match' {
        $dir = New-TestFolder
        'Tom had a big red ball.' | Set-Content (Join-Path $dir 'a.txt')
        'Sue liked to play in the park.' | Set-Content (Join-Path $dir 'b.txt')
        $r = @($Model | Measure-LoraPerplexity -Path (Join-Path $dir '*.txt'))
        $r.Count | Should -Be 2
        $r.Source | ForEach-Object { Split-Path $_ -Leaf } | Should -Be @('a.txt', 'b.txt')
        Remove-Item -Recurse -Force $dir
    }
    It 'names a missing file' {
        $e = Get-ThrownError { $Model | Measure-LoraPerplexity -LiteralPath '/nonexistent/x.txt' }
        $e.FullyQualifiedErrorId | Should -BeLike 'FileNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}

Describe 'Errors carry ids and categories' {
    It 'missing model path' {
        $e = Get-ThrownError { Import-LoraModel -Path '/nonexistent/model.bin' }
        $e.FullyQualifiedErrorId | Should -BeLike 'ModelNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $e.Exception.Message | Should -Match 'does not exist'
    }
    It 'malformed llama2.c file' {
        $dir = New-TestFolder
        $bad = Join-Path $dir 'bad.bin'
        [System.IO.File]::WriteAllBytes($bad, [byte[]](1..100))
        $e = Get-ThrownError { Import-LoraModel -LiteralPath $bad }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidLlama2cCheckpoint,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidData'
        Remove-Item -Recurse -Force $dir
    }
    It 'bad device' {
        $e = Get-ThrownError { Import-LoraModel -Path $StoriesPath -Device 'tpu:0' }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidDevice,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
    }
    It 'bad dtype is caught by parameter binding (an enum), naming the valid ones' {
        $e = Get-ThrownError { Import-LoraModel -Path $StoriesPath -DType int8 }
        $e.FullyQualifiedErrorId | Should -BeLike 'CannotConvertArgumentNoMessage,*'
        $e.Exception.Message | Should -Match 'Float32, BFloat16, Float16'
    }
    It 'bad sampling settings' {
        $e = Get-ThrownError { $Model | Invoke-LoraGeneration -TopP 0 }
        $e.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentValidationError,*'
    }
}

Describe 'Formats and completion' {
    It 'renders the model table view' {
        $out = $Model | Format-Table | Out-String
        $out | Should -Match 'Parameters'
        $out | Should -Match '260,032'
    }
    It 'renders the perplexity table view' {
        $out = $Model | Measure-LoraPerplexity -Text 'Tom and Sue.' | Format-Table | Out-String
        $out | Should -Match 'Perplexity'
    }
    It 'completes -Device with cpu' {
        $line = 'Import-LoraModel -Device '
        $c = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $c.CompletionMatches.CompletionText | Should -Contain 'cpu'
    }
}

Describe 'Multi-runspace use' {
    It 'generates from ForEach-Object -Parallel' {
        $module = Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1'
        $path = $StoriesPath
        $texts = 1..3 | ForEach-Object -Parallel {
            Import-Module $using:module
            Import-LoraModel -Path $using:path | Invoke-LoraGeneration -Temperature 0 -MaxTokens 50
        } -ThrottleLimit 3
        $texts.Count | Should -Be 3
        ($texts | Select-Object -Unique).Count | Should -Be 1
    }
}

Describe 'Export-LoraModel' {
    It 'writes an HF folder that imports back with identical loss' {
        $dir = New-TestFolder
        $target = Join-Path $dir 'hf'
        $info = $Model | Export-LoraModel -Path $target
        $info | Should -BeOfType [System.IO.DirectoryInfo]
        Test-Path (Join-Path $target 'config.json') | Should -BeTrue
        Test-Path (Join-Path $target 'model.safetensors') | Should -BeTrue
        $text = 'Lily and Tom played with the ball.'
        (Import-LoraModel $target | Measure-LoraPerplexity -Text $text).Loss | Should -Be ($Model | Measure-LoraPerplexity -Text $text).Loss
        Remove-Item -Recurse -Force $dir
    }
    It 'writes nothing with -WhatIf' {
        $dir = New-TestFolder
        $Model | Export-LoraModel -Path (Join-Path $dir 'hf') -WhatIf
        @(Get-ChildItem -Force $dir).Count | Should -Be 0
        Remove-Item -Recurse -Force $dir
    }
    It 'refuses an existing folder without -Force' {
        $dir = New-TestFolder
        $e = Get-ThrownError { $Model | Export-LoraModel -Path $dir }
        $e.FullyQualifiedErrorId | Should -BeLike 'OutputPathExists,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidOperation'
        $Model | Export-LoraModel -Path $dir -Force | Should -Not -BeNullOrEmpty
        Remove-Item -Recurse -Force $dir
    }
}
