BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Text = 'Once upon a time, there was a little girl named Lily. She loved to play outside.'
}

Describe 'Add-LoraAdapter | Get-LoraAdapter' {
    It 'reports rank, alpha, targets and trainable parameters like PEFT' {
        $a = Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 8 -Alpha 16 -TargetModules q_proj,v_proj | Get-LoraAdapter
        $a.PSObject.TypeNames[0] | Should -Be 'LoraShell.LoraAdapter'
        $a.Rank | Should -Be 8
        $a.Alpha | Should -Be 16
        $a.Targets | Should -Be @('q_proj', 'v_proj')
        $a.Modules.Count | Should -Be 10
        $a.TrainableParameters | Should -Be 8960
        $a.Merged | Should -BeFalse
        $a.Active | Should -BeTrue
        ($a | Format-Table | Out-String) | Should -Match '8,960'
    }
    It 'takes a regex and all-linear' {
        (Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules 'model\.layers\.0\..*' | Get-LoraAdapter).Modules.Count | Should -Be 7
        (Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules all-linear | Get-LoraAdapter).Modules.Count | Should -Be 35
    }
    It 'matches dotted names as PEFT does: equal to the path or a suffix after a dot' {
        $q = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules self_attn.q_proj | Get-LoraAdapter
        $q.Modules | Should -Be (0..4 | ForEach-Object { "model.layers.$_.self_attn.q_proj" })
        $mixed = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules mlp.down_proj, q_proj | Get-LoraAdapter
        $mixed.Modules.Count | Should -Be 10
        @($mixed.Modules | Where-Object { $_ -like '*.mlp.down_proj' }).Count | Should -Be 5
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules q_proj, '.*v_proj' }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegexAmongNames,*'
    }
    It 'binds enums for -Bias and -InitMethod' {
        $a = Import-LoraModel $StoriesPath | Add-LoraAdapter -Bias lora_only -InitMethod gaussian -TargetModules q_proj | Get-LoraAdapter
        $a.Bias | Should -Be 'lora_only'
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -Bias some }
        $e.Exception.Message | Should -Match 'none, all, lora_only'
    }
    It 'changes nothing with -WhatIf and says what it would wrap' {
        $m = Import-LoraModel $StoriesPath
        $out = $m | Add-LoraAdapter -TargetModules all-linear -Rank 4 -WhatIf 6>&1 | Out-String
        $m.Adapters.Count | Should -Be 0
        $m.LinearModules.Count | Should -Be 35
    }
    It 'names the error for targets that match nothing and lists the modules' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules nothing_proj }
        $e.FullyQualifiedErrorId | Should -BeLike 'NoTargetModulesMatched,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $e.Exception.Message | Should -Match 'gate_proj'
    }
    It 'rejects a rank larger than the layer' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 40 -TargetModules v_proj }
        $e.FullyQualifiedErrorId | Should -BeLike 'RankTooLarge,*'
    }
    It 'completes -TargetModules from a piped model' {
        $global:pm = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules o_proj
        $line = '$pm | Add-LoraAdapter -TargetModules '
        $c = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $c.CompletionMatches.CompletionText | Should -Contain 'gate_proj'
        $c.CompletionMatches.CompletionText | Should -Contain 'all-linear'
        ($c.CompletionMatches | Where-Object CompletionText -eq 'o_proj').ToolTip | Should -Match '5 modules, e.g. model.layers.0.self_attn.o_proj'
        $line = 'Add-LoraAdapter -Model $pm -TargetModules q'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('q_proj')
    }
}

Describe 'Save, import, merge, export, re-import' {
    BeforeAll { $script:Dir = New-TestFolder }
    AfterAll { Remove-Item -Recurse -Force $Dir }

    It 'round-trips through PEFT format and a merged HF folder with the same perplexity' {
        $trained = Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 8 -Alpha 16 -InitMethod Random -Seed 3
        $expected = ($trained | Measure-LoraPerplexity -Text $Text).Loss
        $base = (Import-LoraModel $StoriesPath | Measure-LoraPerplexity -Text $Text).Loss
        $expected | Should -Not -Be $base

        $folder = $trained | Save-LoraAdapter -Path (Join-Path $Dir 'adapter')
        $folder | Should -BeOfType [System.IO.DirectoryInfo]
        (Get-ChildItem $folder).Name | Should -Be @('adapter_config.json', 'adapter_model.safetensors')

        $fresh = Import-LoraModel $StoriesPath | Import-LoraAdapter -Path $folder.FullName
        ($fresh | Measure-LoraPerplexity -Text $Text).Loss | Should -Be $expected

        $merged = $fresh | Merge-LoraWeights -OutputPath (Join-Path $Dir 'merged')
        $merged | Should -BeOfType [System.IO.DirectoryInfo]
        $fresh.LastMergeParity.Relative | Should -BeLessThan 1e-5
        ($fresh | Get-LoraAdapter).Merged | Should -BeTrue
        $again = Import-LoraModel $merged.FullName
        $again.Adapters.Count | Should -Be 0
        ($again | Measure-LoraPerplexity -Text $Text).Loss | Should -BeGreaterThan ($expected - 1e-4)
        ($again | Measure-LoraPerplexity -Text $Text).Loss | Should -BeLessThan ($expected + 1e-4)
    }

    It 'warns on a second merge and unmerges back' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -InitMethod Random -Seed 4
        $before = ($m | Measure-LoraPerplexity -Text $Text).Loss
        $m | Merge-LoraWeights | Out-Null
        $m | Merge-LoraWeights -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        $w.Count | Should -Be 1
        $m | Merge-LoraWeights -Unmerge | Out-Null
        ($m | Get-LoraAdapter).Merged | Should -BeFalse
        [math]::Abs(($m | Measure-LoraPerplexity -Text $Text).Loss - $before) | Should -BeLessThan 1e-5
    }

    It 'refuses an existing adapter folder without -Force and writes nothing with -WhatIf' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter
        $e = Get-ThrownError { $m | Save-LoraAdapter -Path $Dir }
        $e.FullyQualifiedErrorId | Should -BeLike 'OutputPathExists,*'
        $target = Join-Path $Dir 'whatif'
        $m | Save-LoraAdapter -Path $target -WhatIf
        $m | Merge-LoraWeights -OutputPath (Join-Path $Dir 'whatif-merged') -WhatIf | Out-Null
        Test-Path $target | Should -BeFalse
        Test-Path (Join-Path $Dir 'whatif-merged') | Should -BeFalse
        ($m | Get-LoraAdapter).Merged | Should -BeFalse
    }

    It 'warns when the adapter is untrained' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter
        $m | Save-LoraAdapter -Path (Join-Path $Dir 'zero') -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        $w | Should -Match 'zero'
    }

    It 'saves several adapters the PEFT way' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -InitMethod Random | Add-LoraAdapter -Name style -TargetModules o_proj -InitMethod Random
        $out = @($m | Save-LoraAdapter -Path (Join-Path $Dir 'many'))
        $out.Count | Should -Be 2
        Test-Path (Join-Path $Dir 'many/adapter_config.json') | Should -BeTrue
        Test-Path (Join-Path $Dir 'many/style/adapter_config.json') | Should -BeTrue
        (Import-LoraModel $StoriesPath | Import-LoraAdapter -Path (Join-Path $Dir 'many/style') -Name style | Get-LoraAdapter).Targets | Should -Be 'o_proj'
    }

    It 'names a folder without adapter_config.json' {
        $empty = Join-Path $Dir 'empty'
        New-Item -ItemType Directory $empty | Out-Null
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Import-LoraAdapter -Path $empty }
        $e.FullyQualifiedErrorId | Should -BeLike 'AdapterConfigNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'rejects an adapter for another model' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 4 -InitMethod Random
        $m | Save-LoraAdapter -Path (Join-Path $Dir 'other') | Out-Null
        $cfgPath = Join-Path $Dir 'other/adapter_config.json'
        (Get-Content -Raw $cfgPath) -replace '"r": 4', '"r": 2' | Set-Content $cfgPath
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Import-LoraAdapter -Path (Join-Path $Dir 'other') }
        $e.FullyQualifiedErrorId | Should -BeLike 'AdapterDoesNotMatchModel,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidData'
        $e.Exception.Message | Should -Match 'another rank'
    }
}

Describe 'Several adapters' {
    It 'activates, disables, enables and removes' {
        $m = Import-LoraModel $StoriesPath
        $base = ($m | Measure-LoraPerplexity -Text $Text).Loss
        $m | Add-LoraAdapter -Name a -InitMethod Random -Seed 1 | Add-LoraAdapter -Name b -TargetModules o_proj -InitMethod Random -Seed 2 | Out-Null
        $m.ActiveAdapters | Should -Be @('b')
        $m | Set-LoraAdapter -Name a | Should -BeNullOrEmpty
        $m.ActiveAdapters | Should -Be @('a')
        $withA = ($m | Measure-LoraPerplexity -Text $Text).Loss
        ($m | Disable-LoraAdapter -PassThru | Measure-LoraPerplexity -Text $Text).Loss | Should -Be $base
        ($m | Enable-LoraAdapter -PassThru | Measure-LoraPerplexity -Text $Text).Loss | Should -Be $withA
        $m | Remove-LoraAdapter -Name a, b | Should -BeNullOrEmpty
        $m.Adapters.Count | Should -Be 0
        ($m | Measure-LoraPerplexity -Text $Text).Loss | Should -Be $base
        $e = Get-ThrownError { $m | Set-LoraAdapter -Name a }
        $e.FullyQualifiedErrorId | Should -BeLike 'AdapterNotFound,*'
    }
}

Describe 'DoRA and LoRA+ (issue 28)' {
    It 'adds, trains with LoRA+, saves and imports a DoRA adapter that gives the same loss' {
        $out = New-TestFolder
        try {
            $text = New-ShakespeareSample $out
            $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -UseDora -TargetModules all-linear -Seed 1
            $r = $m | Start-LoraTraining -DataPath $text -MaxSteps 4 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 4 -LoraPlusRatio 16 -Seed 1
            $r.LoraPlusRatio | Should -Be 16
            Assert-AdapterRoundTrip $m (Join-Path $out 'dora')
            (Get-Content -Raw (Join-Path $out 'dora/adapter_config.json') | ConvertFrom-Json).use_dora | Should -BeTrue
        }
        finally { Remove-Item -Recurse -Force $out -ErrorAction SilentlyContinue }
    }
    It 'refuses -LoraPlusRatio for a method without B' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath $StoriesPath -Method Full -MaxSteps 1 -LoraPlusRatio 16 }
        $e.FullyQualifiedErrorId | Should -BeLike 'LoraPlusNeedsLora,*'
    }
}

Describe 'Trainable token rows (issue 28)' {
    It 'trains only the named rows, saves them in PEFT''s keys and imports them with the same loss' {
        $out = New-TestFolder
        try {
            $text = New-ShakespeareSample $out
            $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -TrainableTokenIndices 5, 6, 7 -Seed 1
            ($m | Get-LoraAdapter).TrainableTokenIndices | Should -Be @(5, 6, 7)
            $m | Start-LoraTraining -DataPath $text -MaxSteps 4 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 4 -Seed 1 | Out-Null
            Assert-AdapterRoundTrip $m (Join-Path $out 'tokens')
            (Get-Content -Raw (Join-Path $out 'tokens/adapter_config.json') | ConvertFrom-Json).trainable_token_indices | Should -Be @(5, 6, 7)
        }
        finally { Remove-Item -Recurse -Force $out -ErrorAction SilentlyContinue }
    }
    It 'refuses a token id outside the vocabulary, naming the rows there are' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Add-LoraAdapter -TrainableTokenIndices 5, 512 }
        $e.FullyQualifiedErrorId | Should -BeLike 'TokenIndexOutOfRange,*'
        $e.Exception.Message | Should -Match '0\.\.511'
    }
}

Describe 'Join-LoraAdapter (issue 28)' {
    It 'makes an inactive adapter whose Cat update is the weighted sum, and round-trips it through PEFT files' {
        $out = New-TestFolder
        try {
            $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name a -InitMethod Random -Seed 1 | Add-LoraAdapter -Name b -InitMethod Random -Seed 2
            $m | Join-LoraAdapter -Name ab -Adapter a, b -Weight 0.7, 0.3 -CombinationType Cat | Out-Null
            ($m | Get-LoraAdapter -Name ab).Active | Should -BeFalse
            ($m | Get-LoraAdapter -Name ab).Rank | Should -Be 16
            $m | Set-LoraAdapter -Name ab
            $probe = 'Once upon a time, there was a little girl.'
            $joined = ($m | Measure-LoraPerplexity -Text $probe).Loss
            $m | Save-LoraAdapter -Name ab -Path (Join-Path $out 'ab') | Out-Null
            $back = Import-LoraModel $StoriesPath | Import-LoraAdapter (Join-Path $out 'ab')
            ($back | Measure-LoraPerplexity -Text $probe).Loss | Should -Be $joined
        }
        finally { Remove-Item -Recurse -Force $out -ErrorAction SilentlyContinue }
    }
    It 'names what PEFT refuses: ranks that differ for Linear, a missing -Density' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name a -Rank 4 | Add-LoraAdapter -Name b -Rank 2
        (Get-ThrownError { $m | Join-LoraAdapter -Name ab -Adapter a, b -Weight 1, 1 -CombinationType Linear }).FullyQualifiedErrorId | Should -BeLike 'RanksDiffer,*'
        (Get-ThrownError { $m | Join-LoraAdapter -Name ab -Adapter a, b -Weight 1, 1 -CombinationType Ties }).FullyQualifiedErrorId | Should -BeLike 'DensityRequired,*'
        $m.Adapters | Should -Be @('a', 'b')
    }
}

Describe 'LoRA on the embedding and modules_to_save copies (issue 28)' {
    It 'adds an embedding adapter beside q_proj and refuses to merge it into a tied embedding' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules embed_tokens, q_proj -Seed 1
        ($m | Get-LoraAdapter).Targets | Should -Contain 'embed_tokens'
        (Get-ThrownError { $m | Merge-LoraWeights }).FullyQualifiedErrorId | Should -BeLike 'MergeWouldChangeTiedHead,*'
    }
}
