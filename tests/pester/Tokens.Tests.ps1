BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Qwen3 = Join-Path $Shared 'tokenizers/qwen3'
    $script:Gpt2 = Join-Path $Shared 'tokenizers/gpt2'
    # Encodings by the Rust tokenizers crate and renderings by transformers' Jinja setup (tests/fixtures).
    $script:TokenFixtures = Get-Content (Join-Path $RepoRoot 'tests/fixtures/tokenizers/tokenizer-fixtures.json') -Raw | ConvertFrom-Json
    $script:ChatFixtures = (Get-Content (Join-Path $RepoRoot 'tests/fixtures/chat/chat-templates.json') -Raw | ConvertFrom-Json).cases
}

Describe 'ConvertTo-LoraToken' {
    It 'gives the ids, token strings and spans the tokenizers crate gives (<_>)' -ForEach 'qwen3', 'gpt2' {
        $fixture = $TokenFixtures.tokenizers.$_
        foreach ($case in $fixture.cases | Select-Object -First 25) {
            $tokens = @(ConvertTo-LoraToken -Text $case.text -TokenizerPath (Join-Path $Shared "tokenizers/$_"))
            @($tokens.Id) | Should -Be @($case.ids) -Because $case.id
            @($tokens.Token) | Should -Be @($case.tokens) -Because $case.id
            @($tokens | ForEach-Object { $_.Start, $_.End }) | Should -Be @($case.offsets_utf16 | ForEach-Object { $_ }) -Because $case.id
        }
    }
    It 'puts BOS first for a llama2.c model piped in, and leaves it out with -NoSpecialTokens' {
        $m = Import-LoraModel $StoriesPath
        $ids = $m | ConvertTo-LoraToken -Text 'Once upon a time' -AsIds
        $ids[0] | Should -Be 1
        ($m | ConvertTo-LoraToken -Text 'Once upon a time' -AsIds -NoSpecialTokens) | Should -Be $ids[1..($ids.Count - 1)]
    }
    It 'tokenizes each piped text and marks chat markers as special tokens' {
        $results = @('<|im_start|>user', 'plain') | ConvertTo-LoraToken -TokenizerPath $Qwen3
        $results[0].Special | Should -BeTrue
        $results[0].Token | Should -Be '<|im_start|>'
        ($results | Where-Object Text -eq 'plain').Special | Should -BeFalse
    }
    It 'names a missing tokenizer' {
        $e = Get-ThrownError { ConvertTo-LoraToken -Text 'x' -TokenizerPath (Join-Path $TestDrive 'nope') }
        $e.FullyQualifiedErrorId | Should -Match '^TokenizerNotFound'
        $e.Exception.Message | Should -Match 'nope'
    }
}

Describe 'ConvertFrom-LoraToken' {
    It 'decodes back to the text (<_>)' -ForEach 'qwen3', 'gpt2' {
        $fixture = $TokenFixtures.tokenizers.$_
        foreach ($case in $fixture.cases | Select-Object -First 25) {
            ConvertFrom-LoraToken -Id $case.ids -TokenizerPath (Join-Path $Shared "tokenizers/$_") | Should -BeExactly $case.decoded -Because $case.id
        }
    }
    It 'gathers ids piped one by one into one sequence, and skips special tokens on request' {
        $ids = ConvertTo-LoraToken -Text '<|im_start|>user hi' -TokenizerPath $Qwen3 -AsIds
        ($ids | ConvertFrom-LoraToken -TokenizerPath $Qwen3) | Should -BeExactly '<|im_start|>user hi'
        ($ids | ConvertFrom-LoraToken -TokenizerPath $Qwen3 -SkipSpecialTokens) | Should -BeExactly 'user hi'
    }
    It 'names an id outside the vocabulary' {
        $e = Get-ThrownError { ConvertFrom-LoraToken -Id 1, 999999 -TokenizerPath $Gpt2 }
        $e.FullyQualifiedErrorId | Should -Match '^TokenOutOfRange'
        $e.Exception.Message | Should -Match '999999'
    }
}

Describe 'ConvertTo-LoraChatPrompt' {
    It "renders Qwen3's conversation as transformers does" {
        $expected = ($ChatFixtures | Where-Object id -eq 'qwen3/system-multiturn-gen').expected
        $messages = @(
            @{ role = 'system'; content = 'You are a helpful assistant.' },
            @{ role = 'user'; content = 'Hello, how are you?' },
            @{ role = 'assistant'; content = "I'm doing great. How can I help you today?" },
            @{ role = 'user'; content = 'Tell me a joke.' })
        ConvertTo-LoraChatPrompt -TokenizerPath $Qwen3 -Messages $messages -AddGenerationPrompt | Should -BeExactly $expected
    }
    It 'passes template arguments (Qwen3 without thinking)' {
        $prompt = ConvertTo-LoraChatPrompt -TokenizerPath $Qwen3 -Messages @{ role = 'user'; content = 'Hi' } -AddGenerationPrompt -TemplateArguments @{ enable_thinking = $false }
        $prompt | Should -BeExactly "<|im_start|>user`nHi<|im_end|>`n<|im_start|>assistant`n<think>`n`n</think>`n`n"
    }
    It 'says when the tokenizer has no chat template, and names an unknown role' {
        (Get-ThrownError { ConvertTo-LoraChatPrompt -TokenizerPath $Gpt2 -Messages @{ role = 'user'; content = 'Hi' } }).FullyQualifiedErrorId | Should -Match '^NoChatTemplate'
        $e = Get-ThrownError { ConvertTo-LoraChatPrompt -TokenizerPath $Qwen3 -Messages @{ role = 'robot'; content = 'Hi' } }
        $e.Exception.Message | Should -Match 'robot'
    }
}

Describe 'Chat fine-tuning from PowerShell' {
    BeforeAll {
        # A Qwen3-shaped model small enough to train here, with Qwen3's real tokenizer and chat template.
        $script:Folder = Join-Path $TestDrive 'tiny-qwen3'
        $config = '{"model_type":"qwen3","hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"vocab_size":151936,"max_position_embeddings":256,"tie_word_embeddings":true,"bos_token_id":151643,"eos_token_id":151645}'
        $model = [LoraShell.Core.Models.CausalLM]::new([LoraShell.Core.Models.ModelConfig]::FromJson($config, 'test'))
        try { [LoraShell.Core.Models.HuggingFaceWriter]::Save($model, $Folder, $false, $null) | Out-Null } finally { $model.Dispose() }
        Copy-Item (Join-Path $Qwen3 'tokenizer.json'), (Join-Path $Qwen3 'tokenizer_config.json') $Folder
        $script:Data = Join-Path $TestDrive 'chat.jsonl'
        $lines = 1..24 | ForEach-Object {
            @{ messages = @(@{ role = 'user'; content = "What is $_ plus $_?" }, @{ role = 'assistant'; content = "$($_ + $_)." }) } | ConvertTo-Json -Compress -Depth 5
        }
        Set-Content -Path $Data -Value $lines
    }
    It 'trains a LoRA adapter on conversations, on the assistant tokens only, and generates a reply' {
        $m = Import-LoraModel $Folder
        $m | Add-LoraAdapter -Rank 4 -Alpha 8 -TargetModules q_proj, v_proj | Out-Null
        $out = Join-Path $TestDrive 'run'
        $r = $m | Start-LoraTraining -DataPath $Data -MaxSteps 3 -BatchSize 2 -SequenceLength 32 -OutputPath $out -LearningRate 1e-2
        $r.Losses.Count | Should -Be 3
        $r.Losses | ForEach-Object { [double]::IsFinite($_) | Should -BeTrue }
        Test-Path (Join-Path $r.AdapterPath 'adapter_model.safetensors') | Should -BeTrue
        $question = @{ role = 'user'; content = 'What is 2 plus 2?' }
        $reply = $m | Invoke-LoraGeneration -Messages $question -MaxTokens 4 -Temperature 0 -Detailed
        $prompt = ConvertTo-LoraChatPrompt -TokenizerPath $Folder -Messages $question -AddGenerationPrompt
        $reply.PromptTokens | Should -Be @(ConvertTo-LoraToken -Text $prompt -TokenizerPath $Folder -NoSpecialTokens).Count
        $reply.GeneratedTokens | Should -BeLessOrEqual 4
    }
}
