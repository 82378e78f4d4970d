BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestFolder
    $script:T5 = New-TinyT5Model (Join-Path $Dir 't5') -Gated
    # SST-2 as the T5 paper writes it: "sst2 sentence: …" → positive / negative.
    $script:Pairs = Join-Path $Dir 'sst2.jsonl'
    Get-Content (Join-Path $Shared 'data/sst2/train.tsv') | Select-Object -Skip 1 -First 120 | ForEach-Object {
        $sentence, $label = $_ -split "`t"
        @{ input = "sst2 sentence: $($sentence.Trim())"; target = if ($label -eq '1') { 'positive' } else { 'negative' } } | ConvertTo-Json -Compress
    } | Set-Content $Pairs
}
AfterAll { Remove-Item -Recurse -Force $Dir }

Describe 'T5 through the cmdlets' {
    It 'imports as an encoder-decoder whose adapters default to PEFT''s q and v' {
        $m = Import-LoraModel $T5
        $m.Family | Should -Be 't5'
        $m.EncoderDecoder | Should -BeTrue
        $m.DecoderLayers | Should -Be 2
        $m.LinearModules | Should -Contain 'decoder.block.1.layer.1.EncDecAttention.q'
        $a = $m | Add-LoraAdapter -Rank 4 | Get-LoraAdapter
        $a.Modules.Count | Should -Be 12   # q and v of 2 encoder self-attentions, 2 decoder self- and 2 cross-attentions
        $a.Targets | Sort-Object | Should -Be @('q', 'v')
    }

    It 'scores a target given an input, and says how when the input is missing' {
        $m = Import-LoraModel $T5
        $r = $m | Measure-LoraPerplexity -InputText 'sst2 sentence: a gripping film' -Text 'positive'
        $r.Tokens | Should -BeGreaterThan 1
        $r.Perplexity | Should -BeGreaterThan 1
        $e = Get-ThrownError { $m | Measure-LoraPerplexity -Text 'positive' }
        $e.FullyQualifiedErrorId | Should -BeLike 'NotSupportedForT5*'
        $e.Exception.Message | Should -Match '-InputText'
        $e = Get-ThrownError { Import-LoraModel $StoriesPath | Measure-LoraPerplexity -InputText 'a' -Text 'b' }
        $e.FullyQualifiedErrorId | Should -BeLike 'NeedsEncoderDecoder*'
    }

    It 'trains a ladder side network on input/target pairs that Import-LoraModel -SideNetworkPath attaches again' {
        $out = Join-Path $Dir 'ladder'
        $r = Import-LoraModel $T5 | Start-LoraTraining -Method Ladder -ReductionFactor 2 -DataPath $Pairs -MaxSteps 6 -BatchSize 8 -SequenceLength 96 -LearningRate 5e-3 -OutputPath $out
        $r.Task | Should -Be 'TextToText'
        $r.Labels | Should -Be @('negative', 'positive')
        $r.FinalValidationAccuracy | Should -Not -BeNullOrEmpty
        $m = Import-LoraModel $T5 -SideNetworkPath $r.SideNetworkPath
        $m.SideNetwork | Should -Match '2 encoder \+ 2 decoder blocks'
        $g = $m | Invoke-LoraGeneration -Prompt 'sst2 sentence: a gripping film' -MaxTokens 4 -Temperature 0
        $g.GeneratedTokens.Count | Should -BeLessOrEqual 4
        ($m | Measure-LoraPerplexity -InputText 'sst2 sentence: a gripping film' -Text 'positive').Loss |
            Should -Not -Be (Import-LoraModel $T5 | Measure-LoraPerplexity -InputText 'sst2 sentence: a gripping film' -Text 'positive').Loss
    }
}

Describe 'Measure-LoraMemory for T5' {
    It 'estimates the T5 presets text-to-text, Ladder below LoRA below Full' {
        $r = Measure-LoraMemory -Preset t5-base -Method Full, Lora, Ladder -TargetModules q, v -BatchSize 100 -SequenceLength 128 -TargetLength 4
        $r.Count | Should -Be 3
        $full, $lora, $ladder = $r
        $full.Parameters | Should -Be 222903552
        $ladder.TotalGB | Should -BeLessThan $lora.TotalGB
        $lora.TotalGB | Should -BeLessThan $full.TotalGB
        (Measure-LoraMemory -Preset mt0-xxl -Method Lora -TargetModules q, v -SequenceLength 256 -TargetLength 32).Parameters | Should -BeGreaterThan 12.9e9
    }

    It 'reads a piped T5 model with its own default targets, and a T5 config.json' {
        $m = Import-LoraModel $T5
        $piped = $m | Measure-LoraMemory -Method Lora -BatchSize 4 -SequenceLength 32 -TargetLength 4
        (Measure-LoraMemory -Path (Join-Path $T5 'config.json') -Method Full -SequenceLength 32).Parameters | Should -Be $m.Parameters
        $piped.TrainableParameters | Should -Be (($m | Add-LoraAdapter | Get-LoraAdapter).TrainableParameters)
        (Get-ThrownError { Measure-LoraMemory -Preset t5-base -Method Lora -TargetModules q_proj }).FullyQualifiedErrorId | Should -BeLike 'UnknownTarget*'
    }
}
