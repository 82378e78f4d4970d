#requires -Version 7.4
<#
.SYNOPSIS
    The PowerShell twin of notebooks/00-quickstart.ipynb: LoRA from a PowerShell pipeline in a few
    commands. Load a model, add an adapter, train it on Tiny Shakespeare, chart the loss, save the PEFT
    adapter, merge it, and ask Measure-LoraMemory what a 7B model would need.
.EXAMPLE
    pwsh samples/00-quickstart.ps1 out/samples/00-quickstart
#>
param(
    [string] $OutputPath = (Join-Path $PSScriptRoot '../out/samples/00-quickstart'),
    [string] $Shared = (Join-Path $PSScriptRoot '../../shared')
)
$ErrorActionPreference = 'Stop'
$PSStyle.OutputRendering = 'PlainText'
Import-Module (Join-Path $PSScriptRoot '../module/LoraShell/LoraShell.psd1')
$Shared = (Resolve-Path $Shared).Path
$work = (New-Item -ItemType Directory -Force $OutputPath).FullName
$base = Join-Path $Shared 'models/stories260K/stories260K.bin'
$data = Join-Path $Shared 'data/tinyshakespeare/input.txt'

'1. Load a model and generate'
$model = Import-LoraModel $base
$model | Format-Table | Out-Host
$model | Invoke-LoraGeneration -Prompt 'ROMEO:' -MaxTokens 40 -Temperature 0 | Out-Host

'2. Add a LoRA adapter (r 8, alpha 16, q_proj and v_proj) and train it'
$run = $model | Add-LoraAdapter -Rank 8 -Alpha 16 -TargetModules q_proj, v_proj |
    Start-LoraTraining -DataPath $data -MaxSteps 150 -BatchSize 8 -SequenceLength 128 -LearningRate 3e-3 -EvalEvery 50 -MaxEvalWindows 32 -OutputPath (Join-Path $work 'lora')
$run | Format-List Method, Steps, InitialValidationLoss, FinalValidationLoss, TrainableParameters, MillisecondsPerStep, @{ n = 'AdapterPath'; e = { Resolve-Path -Relative $_.AdapterPath } } | Out-Host

'3. Chart the loss curve'
$run | Export-LoraChart -Path (Join-Path $work 'loss.html') -Title 'LoRA r 8 on Tiny Shakespeare' -Force | Out-Host
$png = $run | Export-LoraChart -Path (Join-Path $work 'loss.png') -Title 'LoRA r 8 on Tiny Shakespeare' -Force
$png | Out-Host

'4. The adapter on disk is a Hugging Face PEFT adapter'
Get-ChildItem $run.AdapterPath | Format-Table Name, Length | Out-Host
Get-Content (Join-Path $run.AdapterPath 'adapter_config.json') -Raw | ConvertFrom-Json | Format-List peft_type, r, lora_alpha, target_modules | Out-Host

'5. Merge it into the weights (no inference cost): the same text as the separate adapter, same seed'
$merged = Import-LoraModel $base | Import-LoraAdapter $run.AdapterPath | Merge-LoraWeights
$merged | Get-LoraAdapter | Format-Table | Out-Host
$sample = @{ Prompt = 'ROMEO:'; MaxTokens = 60; Temperature = 0.8; Seed = 3 }
$separate = $model | Invoke-LoraGeneration @sample
$separate | Out-Host
$same = $separate -eq ($merged | Invoke-LoraGeneration @sample)
'same text after merging: {0}' -f $same
if (-not $same) { throw 'The merged model samples other text than the model with its adapter separate.' }

'6. What would a 7B model need? (Full vs LoRA vs Ladder, bf16 mixed precision, 80 GB GPUs)'
Measure-LoraMemory -Preset Llama-2-7B -Method Full, Lora, Ladder -Precision Bf16Mixed -ActivationCheckpointing |
    Format-Table Model, Method, @{ n = 'Trainable'; e = { '{0:N0}' -f $_.TrainableParameters } }, TotalGB, Gpus | Out-Host
