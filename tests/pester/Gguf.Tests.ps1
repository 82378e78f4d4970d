BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
}

Describe 'Export-LoraModel -Format Gguf' {
    BeforeAll { $script:Out = New-TestFolder }
    AfterAll { Remove-Item -Recurse -Force $Out }

    It 'writes one GGUF file and an Ollama Modelfile, and the file imports back as the same model' {
        $file = Join-Path $Out 'stories.gguf'
        $item = Import-LoraModel $StoriesPath | Export-LoraModel -Format Gguf -Path $file
        $item | Should -BeOfType System.IO.FileInfo
        $item.FullName | Should -Be $file
        $modelfile = Get-Content -Raw (Join-Path $Out 'stories.Modelfile')
        $modelfile | Should -Match '(?m)^FROM \./stories\.gguf$'
        $m = Import-LoraModel $file
        $m.Format | Should -Be 'gguf'
        $m.Family | Should -Be 'llama'
        $m.Parameters | Should -Be 260032
        ($m | Invoke-LoraGeneration -Temperature 0 -MaxTokens 200) + "`n" | Should -BeExactly ([System.IO.File]::ReadAllText($Greedy200))
    }
    It 'takes the format from a .gguf path and the tensor type from -TensorType (or -OutType)' {
        $file = Join-Path $Out 'q8.gguf'
        Import-LoraModel $StoriesPath | Export-LoraModel -Path $file -OutType Q8_0 | Out-Null
        $f = [LoraShell.Core.IO.Gguf.GgufFile]::Open($file)
        try {
            $f.Metadata['general.file_type'].Value | Should -Be 7
            @($f.Tensors | Where-Object { $_.Type -eq 'Q8_0' }).Count | Should -BeGreaterThan 0
            @($f.Tensors | Where-Object { $_.Name -like '*_norm.weight' -and $_.Type -ne 'F32' }).Count | Should -Be 0
        } finally { $f.Dispose() }
    }
    It 'writes nothing with -WhatIf, refuses an existing file without -Force and replaces it with -Force' {
        $file = Join-Path $Out 'again.gguf'
        $m = Import-LoraModel $StoriesPath
        $m | Export-LoraModel -Path $file -WhatIf
        Test-Path $file | Should -BeFalse
        $m | Export-LoraModel -Path $file | Out-Null
        (Get-ThrownError { $m | Export-LoraModel -Path $file }).FullyQualifiedErrorId | Should -BeLike 'OutputPathExists,*'
        $m | Export-LoraModel -Path $file -TensorType F16 -Force | Out-Null
        (Get-Item $file).Length | Should -BeLessThan 700KB
    }
    It 'names what it cannot do' {
        $m = Import-LoraModel $StoriesPath
        (Get-ThrownError { $m | Export-LoraModel -Path (Join-Path $Out 'hf') -TensorType Q8_0 }).FullyQualifiedErrorId | Should -BeLike 'TensorTypeNeedsGguf,*'
        (Get-ThrownError { $m | Export-LoraModel -Format Gguf -Path $Out -Force }).FullyQualifiedErrorId | Should -BeLike 'OutputPathIsFolder,*'
        $m | Add-LoraAdapter | Out-Null
        (Get-ThrownError { $m | Export-LoraModel -Path (Join-Path $Out 'unmerged.gguf') }).FullyQualifiedErrorId | Should -BeLike 'UnmergedAdapters,*'
    }
}

Describe 'Save-LoraAdapter -Format Gguf' {
    BeforeAll { $script:Out = New-TestFolder }
    AfterAll { Remove-Item -Recurse -Force $Out }

    It 'writes a GGUF LoRA adapter and, with -BaseModelPath, a Modelfile with FROM and ADAPTER' {
        $m = Import-LoraModel $StoriesPath
        $base = Join-Path $Out 'base.gguf'
        $m | Export-LoraModel -Path $base | Out-Null
        $m | Add-LoraAdapter -Rank 4 -Alpha 8 -InitMethod gaussian -TargetModules all-linear | Out-Null
        $item = $m | Save-LoraAdapter -Path (Join-Path $Out 'ad.gguf') -BaseModelPath $base
        $item | Should -BeOfType System.IO.FileInfo
        $lines = Get-Content (Join-Path $Out 'ad.Modelfile')
        $lines | Should -Contain 'FROM ./base.gguf'
        $lines | Should -Contain 'ADAPTER ./ad.gguf'
        $f = [LoraShell.Core.IO.Gguf.GgufFile]::Open($item.FullName)
        try {
            $f.Metadata['general.type'].Value | Should -Be 'adapter'
            $f.Metadata['adapter.lora.alpha'].Type | Should -Be 'Float32'
            $f.Tensors.Count | Should -Be 70 # A and B for 35 matrices
            $f.Tensor('blk.0.attn_q.weight.lora_a').Shape | Should -Be @(4, 64)
            $f.Tensor('blk.0.attn_q.weight.lora_b').Shape | Should -Be @(64, 4)
        } finally { $f.Dispose() }
    }
    It 'asks for -Name when the model holds several adapters, and for an existing base' {
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name a | Add-LoraAdapter -Name b
        (Get-ThrownError { $m | Save-LoraAdapter -Path (Join-Path $Out 'two.gguf') }).FullyQualifiedErrorId | Should -BeLike 'AdapterNameRequired,*'
        (Get-ThrownError { $m | Save-LoraAdapter -Name a -Path (Join-Path $Out 'a.gguf') -BaseModelPath (Join-Path $Out 'none.gguf') }).FullyQualifiedErrorId | Should -BeLike 'BaseModelNotFound,*'
        $m | Save-LoraAdapter -Name b -Path (Join-Path $Out 'b.gguf') | Should -Not -BeNullOrEmpty
        (Get-ThrownError { Import-LoraModel (Join-Path $Out 'b.gguf') }).FullyQualifiedErrorId | Should -BeLike 'GgufIsAnAdapter,*'
    }
}
