BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestFolder
    $script:Data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
}
AfterAll { Remove-Item -Recurse -Force $Dir }

Describe 'Import-LoraModel -Quantization' {
    It 'stores the decoder projections in 4 or 8 bits and says so in its view' {
        $dense = Import-LoraModel $StoriesPath
        $nf4 = Import-LoraModel $StoriesPath -Quantization Nf4
        $dq = Import-LoraModel $StoriesPath -Quantization Nf4 -DoubleQuant
        $int8 = Import-LoraModel $StoriesPath -Quantization Int8
        $dense.Quantization | Should -Be 'None'
        $nf4.Quantization | Should -Be 'Nf4'
        $dq.Quantization | Should -Be 'Nf4+DQ'
        $int8.Quantization | Should -Be 'Int8'
        # stories260K: 229,376 projection weights of 260,032 (embedding tied to the head, norms dense).
        $nf4.WeightMiB | Should -BeLessThan $int8.WeightMiB
        $int8.WeightMiB | Should -BeLessThan ($dense.WeightMiB / 2)
        $dq.WeightMiB | Should -BeLessThan $nf4.WeightMiB
        $text = $nf4 | Format-Table | Out-String -Width 200
        $text | Should -Match 'Quant'
        $text | Should -Match 'Nf4'
    }

    It 'keeps perplexity and greedy text close to the float32 model' {
        $text = (Get-Content $Greedy200 -Raw).Substring(0, 400)
        $dense = Import-LoraModel $StoriesPath | Measure-LoraPerplexity -Text $text
        $int8 = Import-LoraModel $StoriesPath -Quantization Int8 | Measure-LoraPerplexity -Text $text
        $nf4 = Import-LoraModel $StoriesPath -Quantization Nf4 | Measure-LoraPerplexity -Text $text
        # Rounding moves the loss, a little: int8 less than NF4 (a 64-wide model is coarse for 4 bits), in nats.
        [math]::Abs($int8.Loss - $dense.Loss) | Should -BeGreaterThan 0
        [math]::Abs($int8.Loss - $dense.Loss) | Should -BeLessThan 0.02
        [math]::Abs($int8.Loss - $dense.Loss) | Should -BeLessThan ([math]::Abs($nf4.Loss - $dense.Loss))
        [math]::Abs($nf4.Loss - $dense.Loss) | Should -BeLessThan 0.25
        $g = Import-LoraModel $StoriesPath -Quantization Int8 | Invoke-LoraGeneration -MaxTokens 20 -Temperature 0
        $g | Should -Not -BeNullOrEmpty
    }

    It 'trains a LoRA adapter on an NF4 base (QLoRA), saves a PEFT adapter and exports a dense merged model' {
        $out = Join-Path $Dir 'qlora'
        $model = Import-LoraModel $StoriesPath -Quantization Nf4 -DoubleQuant | Add-LoraAdapter -TargetModules all-linear -Rank 4
        $result = $model | Start-LoraTraining -DataPath $Data -MaxSteps 8 -BatchSize 4 -SequenceLength 32 -LearningRate 0.01 -MaxEvalWindows 4 -GradientCheckpointing -OutputPath $out
        $result.FinalValidationLoss | Should -BeLessThan $result.InitialValidationLoss
        Join-Path $result.AdapterPath 'adapter_model.safetensors' | Should -Exist
        $config = Get-Content (Join-Path $result.AdapterPath 'adapter_config.json') -Raw | ConvertFrom-Json
        $config.peft_type | Should -Be 'LORA'
        $config.r | Should -Be 4
        # The adapter is an ordinary one: it loads onto the dense base too.
        $onDense = Import-LoraModel $StoriesPath | Import-LoraAdapter -Path $result.AdapterPath
        @($onDense | Get-LoraAdapter).Count | Should -Be 1
        $merged = Join-Path $Dir 'merged'
        $model | Merge-LoraWeights -OutputPath $merged -WarningVariable warned -WarningAction SilentlyContinue | Out-Null
        ($warned -join ' ') | Should -Match 'dequantiz'
        $reloaded = Import-LoraModel $merged
        $reloaded.Quantization | Should -Be 'None'
        $reloaded.Parameters | Should -Be (Import-LoraModel $StoriesPath).Parameters
    }

    It 'refuses full fine-tuning of a quantized base with a named error' {
        $e = Get-ThrownError { Import-LoraModel $StoriesPath -Quantization Int8 | Start-LoraTraining -Method Full -DataPath $Data -MaxSteps 1 -OutputPath (Join-Path $Dir 'full') }
        $e.FullyQualifiedErrorId | Should -BeLike 'QuantizedFullFineTune,*'
        Join-Path $Dir 'full' | Should -Not -Exist
    }
}

Describe 'Measure-LoraMemory -Quantization' {
    It 'counts 4- and 8-bit frozen projections and takes a piped model''s format' {
        $rows = 'None', 'Int8', 'Nf4' | ForEach-Object { Measure-LoraMemory -Preset Llama-2-7B -Method Lora -Quantization $_ }
        $rows[1].WeightsGB | Should -BeLessThan ($rows[0].WeightsGB / 3)
        $rows[2].WeightsGB | Should -BeLessThan ($rows[1].WeightsGB * 0.7)
        $rows[2].Quantization | Should -Be 'Nf4'
        $piped = Import-LoraModel $StoriesPath -Quantization Nf4 -DoubleQuant | Measure-LoraMemory -Method Lora -BatchSize 2 -SequenceLength 32
        $piped.Quantization | Should -Be 'Nf4+DQ'
        ($piped | Out-String -Width 200) | Should -Match 'Fp32/Nf4\+DQ'
        $e = Get-ThrownError { Measure-LoraMemory -Preset Llama-2-7B -Method Full -Quantization Nf4 }
        $e.FullyQualifiedErrorId | Should -BeLike 'QuantizedFullFineTune,*'
        # Without an explicit -Method, Full is left out rather than refused.
        (Measure-LoraMemory -Preset Llama-2-7B -Quantization Nf4).Method | Should -Be @('Lora', 'Ladder')
    }
}
