BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Claims = @{ Method = 'Full', 'Lora'; Precision = 'Bf16Mixed'; ActivationCheckpointing = $true; FusedCrossEntropy = $true; SequenceLength = 2048 }
}

Describe 'Measure-LoraMemory' {
    It 'reproduces the seed''s claims: Qwen1.5-7B full fine-tuning on 2 x 80 GB, Qwen1.5-72B on 20 (>= 1,600 GB)' {
        $rows = Measure-LoraMemory -Preset Qwen1.5-7B, Qwen1.5-72B @Claims
        $rows.Count | Should -Be 4
        $q7 = $rows | Where-Object { $_.Model -eq 'Qwen1.5-7B' -and $_.Method -eq 'Full' }
        $q72 = $rows | Where-Object { $_.Model -eq 'Qwen1.5-72B' -and $_.Method -eq 'Full' }
        $q7.Gpus | Should -Be 2
        $q72.Gpus | Should -Be 20
        $q72.Gpus * $q72.GpuMemoryGB | Should -BeGreaterOrEqual 1600
        ($rows | Where-Object Method -eq 'Lora' | ForEach-Object Gpus) | ForEach-Object { $_ | Should -BeLessOrEqual 2 }
    }

    It 'renders its table view with the GPU count' {
        $text = Measure-LoraMemory -Preset Qwen1.5-72B -Method Full -Precision Bf16Mixed -ActivationCheckpointing -FusedCrossEntropy | Out-String -Width 200
        $text | Should -Match 'Total GB'
        $text | Should -Match '20 x 80 GB'
    }

    It 'reads the architecture from a piped model, a config.json and plain numbers alike' {
        $folder = New-TestFolder
        try {
            $model = Import-LoraModel $StoriesPath
            # Without -TargetModules a piped model is estimated for what a default run of it trains (q_proj, v_proj).
            ($model | Measure-LoraMemory -Method Lora).TrainableParameters | Should -Be 8960
            $fromModel = $model | Measure-LoraMemory -Method Lora -TargetModules all-linear -BatchSize 4 -SequenceLength 64
            $model | Export-LoraModel -Path (Join-Path $folder 'hf')
            $fromFile = Measure-LoraMemory -Path (Join-Path $folder 'hf') -Method Lora -BatchSize 4 -SequenceLength 64
            $fromPreset = Measure-LoraMemory -Preset stories260K -Method Lora -BatchSize 4 -SequenceLength 64
            $fromFile.TotalGB | Should -Be $fromModel.TotalGB
            $fromPreset.TotalGB | Should -Be $fromModel.TotalGB
            $fromModel.TrainableParameters | Should -Be (($model | Add-LoraAdapter -Name probe -TargetModules all-linear -Rank 8 | Get-LoraAdapter -Name probe).TrainableParameters)
            $shape = Measure-LoraMemory -HiddenSize 4096 -LayerCount 32 -IntermediateSize 11008 -VocabSize 32000 -Method Full
            $shape.Parameters | Should -Be (Measure-LoraMemory -Preset Llama-2-7B -Method Full).Parameters
            $count = Measure-LoraMemory -ParameterCount 7e9 -Method Full -Precision Bf16Mixed
            $count.WeightsGB + $count.GradientsGB + $count.OptimizerGB | Should -Be (7 * 20)
            $count.Notes | Should -Match 'Activations not included'
        }
        finally { Remove-Item $folder -Recurse -Force }
    }

    It 'names bad input with an error id and category' {
        $e = Get-ThrownError { Measure-LoraMemory -Preset GPT-5 }
        $e.FullyQualifiedErrorId | Should -Match '^UnknownPreset'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $e = Get-ThrownError { Measure-LoraMemory -Preset Llama-2-7B -Method Full -Precision Int4Base }
        $e.FullyQualifiedErrorId | Should -Match '^QuantizedFullFineTune'
        $e = Get-ThrownError { Measure-LoraMemory -Preset Llama-2-7B -Method Lora -Precision Int8Base -Quantization Nf4 }
        $e.FullyQualifiedErrorId | Should -Match '^ConflictingQuantization'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
        (Measure-LoraMemory -Preset Llama-2-7B -Method Lora -Precision Int4Base -Quantization Nf4).Quantization | Should -Be 'Nf4'
        $e = Get-ThrownError { Measure-LoraMemory -ParameterCount 1e9 -Method Lora }
        $e.FullyQualifiedErrorId | Should -Match '^ArchitectureNeeded'
        $e = Get-ThrownError { Measure-LoraMemory -Path (Join-Path $TestDrive 'nothing-here') }
        $e.FullyQualifiedErrorId | Should -Match '^ConfigNotFound'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'completes -Preset' {
        $r = TabExpansion2 -inputScript 'Measure-LoraMemory -Preset Qwen1' -cursorColumn 'Measure-LoraMemory -Preset Qwen1'.Length
        $r.CompletionMatches.CompletionText | Should -Be @('Qwen1.5-7B', 'Qwen1.5-72B')
    }
}

Describe 'Measure-LoraMemory for DoRA and modules_to_save copies (issue 28)' {
    It 'counts what the adapter trains: the magnitudes and the copied modules' {
        $model = Import-LoraModel $StoriesPath | Add-LoraAdapter -TargetModules all-linear -Rank 4 -UseDora -ModulesToSave norm -Seed 1
        $estimate = $model | Measure-LoraMemory -Method Lora -Rank 4 -TargetModules all-linear
        $estimate.TrainableParameters | Should -Be ((($model | Get-LoraAdapter).TrainableParameters) + 11 * 64)
        $plain = Measure-LoraMemory -Preset Qwen1.5-7B -Method Lora
        (Measure-LoraMemory -Preset Qwen1.5-7B -Method Lora -ModulesToSave lm_head).TrainableParameters |
            Should -Be ($plain.TrainableParameters + 151936 * 4096)
        # Qwen3-0.6B ties its head: a copy of lm_head is a copy of the embedding's weight, and untying keeps the base one frozen beside it.
        $tied = Measure-LoraMemory -Preset Qwen3-0.6B -Method Lora
        $copied = Measure-LoraMemory -Preset Qwen3-0.6B -Method Lora -ModulesToSave lm_head
        $copied.TrainableParameters | Should -Be ($tied.TrainableParameters + 151936 * 1024)
        $copied.TotalGB | Should -BeGreaterThan $tied.TotalGB
    }
}
