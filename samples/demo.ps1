#requires -Version 7.4
<#
.SYNOPSIS
    LoraShell's main demo: load a real Llama-architecture model, check it against llama2.c, generate,
    score in-domain and out-of-domain text, round-trip it through a Hugging Face folder, adapt it to
    Shakespeare with LoRA (train, save, import, merge), and compress a full fine-tune with SVD.
.PARAMETER Shared
    The folder holding models/stories260K and data/ (default: ../shared beside the repository).
.PARAMETER Module
    The LoraShell manifest to import (default: the repository's module/LoraShell; samples/demo.sh passes the
    installed package).
#>
param(
    [string] $Shared = (Join-Path $PSScriptRoot '../../shared'),
    [string] $OutputPath = (Join-Path $PSScriptRoot '../out/demo'),
    # The module to run: samples/demo.sh passes the package it installed; by default the repository's build.
    [string] $Module = (Join-Path $PSScriptRoot '../module/LoraShell/LoraShell.psd1')
)
$ErrorActionPreference = 'Stop'
Import-Module $Module
$Shared = (Resolve-Path $Shared).Path
$stories = Join-Path $Shared 'models/stories260K'

Write-Host "`n== 1. Load stories260K (llama2.c checkpoint, converted to the Hugging Face Llama layout)" -ForegroundColor Cyan
$model = Import-LoraModel -Path (Join-Path $stories 'stories260K.bin')
$model | Format-Table | Out-Host

Write-Host "== 2. Greedy decoding from BOS, compared with llama2.c's reference output" -ForegroundColor Cyan
$greedy = $model | Invoke-LoraGeneration -Temperature 0 -MaxTokens 200
$reference = [System.IO.File]::ReadAllText((Join-Path $stories 'greedy200.txt'))
Write-Host $greedy
Write-Host ("matches greedy200.txt byte for byte: {0}" -f (($greedy + "`n") -ceq $reference)) -ForegroundColor Green

Write-Host "`n== 3. A sampled story (temperature 0.9, top-p 0.9, seed 7)" -ForegroundColor Cyan
$model | Invoke-LoraGeneration -Prompt 'Tom found a tiny dragon' -MaxTokens 120 -Temperature 0.9 -TopP 0.9 -Seed 7 | Out-Host

Write-Host "`n== 4. Perplexity: its own domain vs Tiny Shakespeare (validation = last 10%)" -ForegroundColor Cyan
$shakespeare = [System.IO.File]::ReadAllText((Join-Path $Shared 'data/tinyshakespeare/input.txt'))
$validation = $shakespeare.Substring([int]($shakespeare.Length * 0.9))
@(
    $model | Measure-LoraPerplexity -Text $reference
    $model | Measure-LoraPerplexity -Text $validation
) | ForEach-Object { $_.Source = if ($_.Tokens -lt 1000) { 'greedy200.txt (TinyStories style)' } else { 'Tiny Shakespeare validation' }; $_ } |
    Format-Table | Out-Host
Write-Host "The base model knows children's stories, not Shakespeare: that gap is what fine-tuning closes."

Write-Host "`n== 5. Export as a Hugging Face folder and import it back" -ForegroundColor Cyan
$hf = Join-Path $OutputPath 'stories260K-hf'
if (Test-Path $hf) { Remove-Item -Recurse -Force $hf }
$model | Export-LoraModel -Path $hf | Out-Null
Get-ChildItem $hf | Format-Table Name, Length | Out-Host
$again = Import-LoraModel -Path $hf
$a = ($model | Measure-LoraPerplexity -Text $reference).Loss
$b = ($again | Measure-LoraPerplexity -Text $reference).Loss
Write-Host ("loss before export {0:N6}, after re-import {1:N6}: identical = {2}" -f $a, $b, ($a -eq $b)) -ForegroundColor Green

$data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
$common = @{ DataPath = $data; BatchSize = 16; SequenceLength = 256; WarmupSteps = 20; Seed = 1337; MaxEvalWindows = 64 }

Write-Host "`n== 6. LoRA on Tiny Shakespeare: r 8, alpha 16, q_proj + v_proj (200 steps, batch 16 x 256)" -ForegroundColor Cyan
$lora = Import-LoraModel -Path (Join-Path $stories 'stories260K.bin') | Add-LoraAdapter -Rank 8 -Alpha 16 -TargetModules q_proj, v_proj
$lora | Get-LoraAdapter | Format-Table | Out-Host
$loraRun = $lora | Start-LoraTraining @common -MaxSteps 200 -LearningRate 3e-3 -OutputPath (Join-Path $OutputPath 'lora') -Force
$loraRun | Format-Table | Out-Host

Write-Host "== 7. The PEFT adapter travels: import into a fresh base, merge, export a plain HF model" -ForegroundColor Cyan
$merged = Import-LoraModel -Path (Join-Path $stories 'stories260K.bin') | Import-LoraAdapter -Path $loraRun.AdapterPath | Merge-LoraWeights -Verbose 4>&1 |
    ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { Write-Host "   $($_.Message)" } else { $_ } }
$mergedFolder = Join-Path $OutputPath 'lora-merged'
if (Test-Path $mergedFolder) { Remove-Item -Recurse -Force $mergedFolder }
$merged | Merge-LoraWeights -OutputPath $mergedFolder -WarningAction SilentlyContinue | Out-Null
@(
    [pscustomobject]@{ Model = 'base'; Loss = ($model | Measure-LoraPerplexity -Text $validation).Loss }
    [pscustomobject]@{ Model = 'LoRA (merged, re-imported)'; Loss = (Import-LoraModel $mergedFolder | Measure-LoraPerplexity -Text $validation).Loss }
) | Format-Table Model, @{ n = 'Validation loss'; e = { '{0:N4}' -f $_.Loss } } | Out-Host
$merged | Invoke-LoraGeneration -Prompt 'ROMEO:' -MaxTokens 60 -Temperature 0.8 -Seed 3 | Out-Host

Write-Host "`n== 8. Full fine-tuning, then SVD compression of the weight deltas into a rank-8 PEFT adapter" -ForegroundColor Cyan
$fullRun = Import-LoraModel -Path (Join-Path $stories 'stories260K.bin') | Start-LoraTraining @common -Method Full -MaxSteps 150 -LearningRate 1e-3 -OutputPath (Join-Path $OutputPath 'full') -Force
$deltaFolder = Join-Path $OutputPath 'svd-r8'
$reports = Invoke-SvdDelta -BasePath $hf -FineTunedPath $fullRun.ModelPath -OutputPath $deltaFolder -Rank 8 -IncludeNonMatrix -Force
$reports | Select-Object -Last 1 | Format-List | Out-Host
$svdModel = Import-LoraModel $hf | Import-LoraAdapter $deltaFolder | Merge-LoraWeights
@(
    [pscustomobject]@{ Model = 'full fine-tune'; Loss = (Import-LoraModel $fullRun.ModelPath | Measure-LoraPerplexity -Text $validation).Loss }
    [pscustomobject]@{ Model = 'rank-8 SVD delta, merged'; Loss = ($svdModel | Measure-LoraPerplexity -Text $validation).Loss }
) | Format-Table Model, @{ n = 'Validation loss'; e = { '{0:N4}' -f $_.Loss } } | Out-Host

Write-Host "== 9. Charts (offline HTML)" -ForegroundColor Cyan
$loraRun, $fullRun | Export-LoraChart -Path (Join-Path $OutputPath 'loss-lora-vs-full.html') -Title 'LoRA vs full fine-tuning on Tiny Shakespeare' -Force | ForEach-Object { Write-Host "   $($_.FullName)" }
$reports | Export-LoraChart -Path (Join-Path $OutputPath 'svd-delta.html') -Force | ForEach-Object { Write-Host "   $($_.FullName)" }

Write-Host "`n== 10. Today's tokenizers: Qwen3's tokenizer.json and its chat template" -ForegroundColor Cyan
$qwen3 = Join-Path $Shared 'tokenizers/qwen3'
ConvertTo-LoraToken -Text 'LoRA adapts a model for 0.1% of its weights.' -TokenizerPath $qwen3 | Format-Table Index, Id, Token, Text -AutoSize | Out-Host
$chat = @(@{ role = 'system'; content = 'You are terse.' }, @{ role = 'user'; content = 'What is LoRA?' })
$prompt = ConvertTo-LoraChatPrompt -TokenizerPath $qwen3 -Messages $chat -AddGenerationPrompt -TemplateArguments @{ enable_thinking = $false }
Write-Host $prompt
Write-Host ("{0} tokens; a .jsonl of {{""messages"": [...]}} lines trains on the assistant's turns only." -f @(ConvertTo-LoraToken -Text $prompt -TokenizerPath $qwen3 -NoSpecialTokens).Count)
