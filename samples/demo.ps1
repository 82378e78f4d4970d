#requires -Version 7.4
<#
.SYNOPSIS
    LoraShell's main demo: load a real Llama-architecture model, check it against llama2.c, generate,
    score in-domain and out-of-domain text, and round-trip it through a Hugging Face folder.
.PARAMETER Shared
    The folder holding models/stories260K and data/ (default: ../shared beside the repository).
#>
param(
    [string] $Shared = (Join-Path $PSScriptRoot '../../shared'),
    [string] $OutputPath = (Join-Path $PSScriptRoot '../out/demo')
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '../module/LoraShell/LoraShell.psd1')
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
