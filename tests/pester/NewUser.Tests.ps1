# What a new user trips over (issue 31): pipelines that bind, warnings for typos, merge-and-unload,
# ShouldProcess everywhere a model changes, and the parameter names people already know.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Tok512 = Join-Path $Shared 'models/stories260K/tok512.bin'
}

Describe 'Pipelines bind by property name' {
    It 'ConvertTo-LoraToken | ConvertFrom-LoraToken round-trips' {
        $text = 'Once upon a time, Tom ran.'
        ConvertTo-LoraToken -Text $text -TokenizerPath $Tok512 -NoSpecialTokens |
            ConvertFrom-LoraToken -TokenizerPath $Tok512 | Should -BeExactly $text
    }
    It 'messages piped from ConvertFrom-Json make one conversation' {
        $qwen = Join-Path $Shared 'tokenizers/qwen3'
        $piped = '[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]' | ConvertFrom-Json |
            ConvertTo-LoraChatPrompt -TokenizerPath $qwen
        $given = ConvertTo-LoraChatPrompt -TokenizerPath $qwen -Messages @(@{ role = 'user'; content = 'Hi' }, @{ role = 'assistant'; content = 'Hello!' })
        $piped | Should -BeExactly $given
        $piped | Should -Match '<\|im_start\|>user\nHi<\|im_end\|>'
    }
    It 'Get-LoraAdapter | Remove-LoraAdapter removes exactly the piped adapters' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name a | Add-LoraAdapter -Name b
        $m | Get-LoraAdapter -Name a | Remove-LoraAdapter
        $m.Adapters | Should -Be @('b')
        (Get-ThrownError { $m | Remove-LoraAdapter }).FullyQualifiedErrorId | Should -BeLike 'AdapterNameRequired,*'
    }
    It 'a training result leads back to its model, so $r | Save-LoraAdapter saves what was trained' {
        $out = New-TestFolder
        try {
            $all = Import-LoraModel $StoriesPath | Start-LoraTraining -DataPath (Join-Path $Shared 'data/tinyshakespeare/input.txt') `
                -MaxSteps 3 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 2 -Seed 1 -Verbose 4>&1
            $r = $all | Where-Object { $_ -is [LoraShell.TrainingResult] }
            # The adapter training adds is Add-LoraAdapter's default, and it says so.
            (@($all | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n") |
                Should -Match "added 'default' \(r 8, alpha 8, q_proj and v_proj\)"
            $r | Save-LoraAdapter -Path (Join-Path $out 'a') | Should -BeOfType System.IO.DirectoryInfo
            $back = Import-LoraModel $StoriesPath | Import-LoraAdapter (Join-Path $out 'a') | Get-LoraAdapter
            $back.Targets | Should -Be @('q_proj', 'v_proj')
            # What the adapters of a piped Get-LoraAdapter belong to binds as the model too.
            $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name x -InitMethod Random
            $m | Get-LoraAdapter -Name x | Save-LoraAdapter -Path (Join-Path $out 'x.gguf') | Should -BeOfType System.IO.FileInfo
        }
        finally { Remove-Item -Recurse -Force $out }
    }
}

Describe 'Adapters record their base as PEFT does' {
    It 'base_model_name_or_path is the path as the user gave it, not an absolute one' {
        $out = New-TestFolder
        Push-Location $out
        try {
            New-Item -ItemType SymbolicLink -Path shared -Target $Shared | Out-Null
            Import-LoraModel ./shared/models/stories260K/stories260K.bin | Add-LoraAdapter | Save-LoraAdapter -Path ./a | Out-Null
            (Get-Content -Raw ./a/adapter_config.json | ConvertFrom-Json).base_model_name_or_path | Should -Be './shared/models/stories260K/stories260K.bin'
        }
        finally { Pop-Location; Remove-Item -Recurse -Force $out }
    }
}

Describe 'Add-LoraAdapter' {
    It 'warns for each listed target that matches nothing' {
        $m = Import-LoraModel $StoriesPath
        $m | Add-LoraAdapter -TargetModules q_prj, v_proj -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        @($w).Count | Should -Be 1
        "$($w[0])" | Should -Match "'q_prj' matches no module"
        ($m | Get-LoraAdapter).Targets | Should -Be @('v_proj')
    }
    It 'says what -WhatIf would wrap per module name, not per path' {
        # -WhatIf writes to the host, which only a separate process's output catches.
        $psd1 = Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1'
        $said = pwsh -NoProfile -NonInteractive -Command "Import-Module '$psd1'; Import-LoraModel '$StoriesPath' | Add-LoraAdapter -TargetModules all-linear -WhatIf" | Out-String
        $said | Should -Match 'q_proj \[64x64\] r=8 in 5 layers'
        $said.Length | Should -BeLessThan 800
    }
}

Describe 'Merge-LoraWeights -Unload' {
    It 'gives a plain model with the merged weights, as merge_and_unload does' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -InitMethod Random -Seed 2 -TargetModules all-linear
        $before = ($m | Measure-LoraPerplexity -Text 'Tom had a red ball.').Loss
        $m | Add-LoraAdapter -Name spare | Set-LoraAdapter -Name default
        $m | Merge-LoraWeights -Unload -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        "$w" | Should -Match "'spare' was not merged"
        $m.Adapters.Count | Should -Be 0
        $m.LinearModules.Count | Should -Be 35
        ($m | Measure-LoraPerplexity -Text 'Tom had a red ball.').Loss | Should -BeGreaterThan ($before - 1e-4)
        ($m | Measure-LoraPerplexity -Text 'Tom had a red ball.').Loss | Should -BeLessThan ($before + 1e-4)
        $m | Add-LoraAdapter | Out-Null # a plain model takes a new adapter
        $m.Adapters | Should -Be @('default')
    }
}

Describe 'Everything that changes a model supports -WhatIf' {
    It 'Set-, Enable- and Disable-LoraAdapter change nothing with -WhatIf' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name a | Add-LoraAdapter -Name b
        $m | Set-LoraAdapter -Name a -WhatIf
        $m.ActiveAdapters | Should -Be @('b')
        $m | Disable-LoraAdapter -WhatIf
        $m.ActiveAdapters | Should -Be @('b')
        $m | Disable-LoraAdapter
        $m | Enable-LoraAdapter -WhatIf
        $m.ActiveAdapters.Count | Should -Be 0
    }
}

Describe 'Names people know' {
    It 'Invoke-LoraGeneration takes -MaxNewTokens and -TopK (1 is greedy)' {
        $m = Import-LoraModel $StoriesPath
        $greedy = $m | Invoke-LoraGeneration -Prompt 'Lily' -MaxNewTokens 20 -Temperature 0
        $m | Invoke-LoraGeneration -Prompt 'Lily' -MaxNewTokens 20 -Temperature 1.5 -TopK 1 -Seed 3 | Should -BeExactly $greedy
        ($m | Invoke-LoraGeneration -Prompt 'Lily' -MaxNewTokens 20 -Temperature 1.5 -TopK 50 -Seed 3) | Should -Not -BeExactly $greedy
    }
    It 'the output path is -Path or -OutputPath everywhere' {
        (Get-Command Merge-LoraWeights).Parameters['OutputPath'].Aliases | Should -Contain 'Path'
        (Get-Command Start-LoraTraining).Parameters['OutputPath'].Aliases | Should -Contain 'Path'
        (Get-Command Invoke-SvdDelta).Parameters['OutputPath'].Aliases | Should -Contain 'Path'
        (Get-Command Save-LoraAdapter).Parameters['Path'].Aliases | Should -Contain 'OutputPath'
        (Get-Command Export-LoraModel).Parameters['Path'].Aliases | Should -Contain 'OutputPath'
    }
}

Describe 'Errors that follow PowerShell' {
    It 'a path Import-LoraModel cannot load is a non-terminating error: -ErrorAction applies and the pipeline goes on' {
        $m = Import-LoraModel ./no-such-model.bin -ErrorAction SilentlyContinue -ErrorVariable e
        $m | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ModelNotFound,*'
        # Both files of the stories260K folder: the tokenizer is named for what it is, the model still loads.
        $models = @(Get-ChildItem (Join-Path $Shared 'models/stories260K/*.bin') | Import-LoraModel -ErrorAction SilentlyContinue -ErrorVariable errs)
        $models.Count | Should -Be 1
        $models[0].Name | Should -Be 'stories260K.bin'
        @($errs).Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'PathIsATokenizer,*'
        $errs[0].Exception.Message | Should -Match 'is a llama2.c tokenizer file'
    }
    It 'a failure of the command as a whole still stops it' {
        { Import-LoraModel $StoriesPath | Add-LoraAdapter -Rank 0 -ErrorAction SilentlyContinue } | Should -Throw
    }
}

Describe 'A seed covers the whole run' {
    It 'Add-LoraAdapter | Start-LoraTraining -Seed reproduces to the last bit' {
        $data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
        $runs = 1..2 | ForEach-Object {
            , (Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules all-linear |
                Start-LoraTraining -DataPath $data -MaxSteps 4 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 2 -Seed 3).Losses
        }
        $runs[0].Count | Should -Be 4
        $runs[0] | Should -Be $runs[1]
    }
}

Describe 'Messages as datasets write them' {
    BeforeAll { $script:Qwen = Join-Path $Shared 'tokenizers/qwen3' }
    It 'joins text parts and refuses other parts, objects and a missing content by name, never printing a .NET type' {
        $parts = ConvertTo-LoraChatPrompt -TokenizerPath $Qwen -Messages @{ role = 'user'; content = @(@{ type = 'text'; text = 'Hello' }, @{ type = 'text'; text = ', world' }) }
        $parts | Should -Match 'user\nHello, world<\|im_end\|>'
        $parts | Should -Not -Match 'System\.'
        (Get-ThrownError { ConvertTo-LoraChatPrompt -TokenizerPath $Qwen -Messages @{ role = 'user'; content = @(@{ type = 'image'; image = 'cat.png' }) } }).FullyQualifiedErrorId | Should -BeLike 'UnsupportedContentPart,*'
        (Get-ThrownError { ConvertTo-LoraChatPrompt -TokenizerPath $Qwen -Messages @{ role = 'user'; content = @{ text = 'hi' } } }).FullyQualifiedErrorId | Should -BeLike 'InvalidChatMessage,*'
        $e = Get-ThrownError { ConvertTo-LoraChatPrompt -TokenizerPath $Qwen -Messages @{ role = 'user'; contnet = 'hi' } }
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidChatMessage,*'
        $e.Exception.Message | Should -Match 'contnet'
    }
}
