BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Root = New-TestFolder
    $script:Gpt2 = New-TinyFamilyModel gpt2 (Join-Path $Root 'gpt2')
    $script:Phi3 = New-TinyFamilyModel phi3 (Join-Path $Root 'phi3')
}
AfterAll { Remove-Item -Recurse -Force $Root -ErrorAction SilentlyContinue }

Describe 'Model families from PowerShell' {
    It 'imports each family and says which it is' {
        foreach ($family in 'llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gpt2') {
            $m = Import-LoraModel (New-TinyFamilyModel $family (Join-Path $Root "any-$family"))
            $m.Family | Should -Be $family
            ($m | Format-Table | Out-String) | Should -Match $family
        }
    }
    It 'adapts GPT-2 by its own module names, fan_in_fan_out, and saves a PEFT adapter' {
        $m = Import-LoraModel $Gpt2 | Add-LoraAdapter -TargetModules c_attn, c_fc -Rank 4
        $a = $m | Get-LoraAdapter
        $a.Modules | Should -Be @('transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc')
        $out = $m | Save-LoraAdapter -Path (Join-Path $Root 'gpt2-adapter')
        (Get-Content -Raw (Join-Path $out.FullName 'adapter_config.json') | ConvertFrom-Json).fan_in_fan_out | Should -BeTrue
        $m | Merge-LoraWeights | Out-Null
        $m.LastMergeParity.Relative | Should -BeLessThan 1e-5
    }
    It 'completes -TargetModules with the family''s real names' {
        $global:phi = Import-LoraModel $Phi3
        $line = '$phi | Add-LoraAdapter -TargetModules '
        $names = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
        $names | Should -Contain 'qkv_proj'
        $names | Should -Contain 'gate_up_proj'
        $names | Should -Not -Contain 'q_proj'
    }
    It 'estimates memory from any family''s config.json and the new presets' {
        $gpt2 = Measure-LoraMemory -Path (Join-Path $Gpt2 'config.json') -Method Lora -TargetModules c_attn -Rank 4
        $gpt2.TrainableParameters | Should -Be (2 * 4 * (32 + 96))
        $rows = Measure-LoraMemory -Preset Llama-3.2-1B, Qwen3-0.6B, Phi-3-mini, GPT-2, Mistral-7B -Method Full
        $rows.Count | Should -Be 5
        ($rows | Where-Object Model -eq 'GPT-2').Parameters | Should -Be 124439808
    }
    It 'names the supported families for an unknown model_type' {
        $bad = Join-Path $Root 'gemma'
        New-Item -ItemType Directory $bad | Out-Null
        '{"model_type":"gemma"}' | Set-Content (Join-Path $bad 'config.json')
        $e = Get-ThrownError { Import-LoraModel $bad }
        $e.FullyQualifiedErrorId | Should -BeLike 'UnsupportedModelType,*'
        $e.Exception.Message | Should -Match 'llama, mistral, qwen2, qwen3, phi3, gpt2'
    }
}
