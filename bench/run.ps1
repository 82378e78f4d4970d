#requires -Version 7.4
<#
.SYNOPSIS
    Runs LoraShell's benchmarks and writes bench/RESULTS.md and bench/results.json.
.DESCRIPTION
    Every scenario runs in a fresh process (bench/LoraShell.Bench), once to warm up (discarded),
    then -Repeat times; the tables report the median and the spread (min..max). -Quick runs each
    scenario once on tiny sizes and writes to out/bench-quick instead: the test suite uses it to prove
    the harness works, never to judge speed.
.EXAMPLE
    pwsh ./bench/run.ps1
.EXAMPLE
    pwsh ./bench/run.ps1 -Quick
#>
param(
    [switch] $Quick,
    [ValidateRange(1, 50)] [int] $Repeat = 5,
    [string[]] $Scenario,
    [string] $OutputDirectory,
    # Re-render RESULTS.md from results.json without running anything.
    [switch] $ReportOnly
)
$ErrorActionPreference = 'Stop'
$repo = Resolve-Path (Join-Path $PSScriptRoot '..')
if (-not $OutputDirectory) { $OutputDirectory = if ($Quick) { Join-Path $repo 'out/bench-quick' } else { $PSScriptRoot } }
New-Item -ItemType Directory -Force $OutputDirectory | Out-Null

dotnet build (Join-Path $PSScriptRoot 'LoraShell.Bench/LoraShell.Bench.csproj') -c Release -nologo -v quiet | Out-Host
if ($LASTEXITCODE) { throw "bench build failed" }
$exe = Join-Path $PSScriptRoot 'LoraShell.Bench/bin/Release/net10.0/LoraShell.Bench.dll'
$all = @(dotnet $exe --list)
# The one scenario outside the console app: importing the module in a fresh pwsh, and its first call.
$all += 'pwsh-module-import'
# pwsh -File passes "a,b" as one string: split it.
$Scenario = @($Scenario | ForEach-Object { $_ -split "," } | Where-Object { $_ })
$unknown = @($Scenario | Where-Object { $_ -notin $all })
if ($unknown.Count) { throw "Unknown scenario(s): $($unknown -join ", "). Known: $($all -join ", ")" }
$selected = if ($ReportOnly) { @() } elseif ($Scenario.Count) { $all | Where-Object { $_ -in $Scenario } } else { $all }
$runs = if ($Quick) { 1 } else { $Repeat }
# Training runs are long and their losses deterministic: one run each, no warm-up.
function Get-RunCount([string] $name) { if ($Quick -or $name -like 'train-*' -or $name -like 'svd-*' -or $name -like 'gguf-*' -or $name -like 'lora-step-vs-*') { 1 } else { $runs } }

function Measure-ModuleImport {
    $psd1 = Join-Path $repo 'module/LoraShell/LoraShell.psd1'
    $model = Join-Path (Resolve-Path (Join-Path $repo '../shared')) 'models/stories260K/stories260K.bin'
    $script = "`$c = [Diagnostics.Stopwatch]::StartNew(); Import-Module '$psd1'; `$i = `$c.Elapsed.TotalMilliseconds; " +
        "`$m = Import-LoraModel '$model'; `$m | Invoke-LoraGeneration -MaxTokens 1 -Temperature 0 | Out-Null; " +
        "'{0};{1}' -f `$i, (`$c.Elapsed.TotalMilliseconds - `$i)"
    $parts = (pwsh -NoProfile -NonInteractive -Command $script | Select-Object -Last 1) -split ';'
    @{ Scenario = 'pwsh-module-import'; Metrics = [ordered]@{ import_ms = [double]$parts[0]; first_call_ms = [double]$parts[1] }
       Settings = [ordered]@{ run = 'fresh pwsh -NoProfile: Import-Module, then Import-LoraModel stories260K + one generated token (libtorch loads on first use)' } }
}

function Invoke-Scenario([string] $name) {
    if ($name -eq 'pwsh-module-import') { return Measure-ModuleImport }
    $args = @($exe, $name) + $(if ($Quick) { '--quick' })
    $line = & dotnet @args
    if ($LASTEXITCODE) { throw "scenario $name failed (exit $LASTEXITCODE)" }
    $line | Select-Object -Last 1 | ConvertFrom-Json -AsHashtable
}

$results = [ordered]@{}
# With -Scenario, the other rows of an earlier full run are kept, so one scenario can be refreshed.
$previous = Join-Path $OutputDirectory 'results.json'
if (($Scenario.Count -or $ReportOnly) -and -not $Quick -and (Test-Path $previous)) {
    $old = Get-Content -Raw $previous | ConvertFrom-Json -AsHashtable
    foreach ($name in $all) { if ($old.results.Contains($name) -and $name -notin $selected) { $results[$name] = $old.results[$name] } }
}
foreach ($name in $selected) {
    $n = Get-RunCount $name
    Write-Host "bench: $name ($n run(s))"
    if ((Get-RunCount $name) -gt 1) { Invoke-Scenario $name | Out-Null }
    $samples = @(1..$n | ForEach-Object { Invoke-Scenario $name })
    $metrics = [ordered]@{}
    foreach ($metric in $samples[0].Metrics.Keys) {
        $values = @($samples | ForEach-Object { [double]$_.Metrics[$metric] } | Sort-Object)
        $median = if ($values.Count % 2) { $values[[int][math]::Floor($values.Count / 2)] } else { ($values[$values.Count / 2 - 1] + $values[$values.Count / 2]) / 2 }
        $metrics[$metric] = [ordered]@{ median = $median; min = $values[0]; max = $values[-1]; runs = $values.Count }
    }
    $results[$name] = [ordered]@{ metrics = $metrics; settings = $samples[0].Settings }
}

$cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
$memGiB = [math]::Round(((Get-Content /proc/meminfo | Select-Object -First 1) -replace '\D', '') / 1MB, 1)
$previousMachine = if ($ReportOnly -and (Test-Path $previous)) { (Get-Content -Raw $previous | ConvertFrom-Json -AsHashtable).machine } else { $null }
$machine = if ($previousMachine) { $previousMachine } else { [ordered]@{
    date = (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd HH:mm') + ' UTC'
    command = if ($Quick) { 'pwsh ./bench/run.ps1 -Quick' } else { "pwsh ./bench/run.ps1 -Repeat $Repeat" }
    cpu = $cpu; cores = [Environment]::ProcessorCount; memory_gib = $memGiB
    dotnet = (dotnet --version); torchsharp = '0.107.0'; libtorch = '2.10.0 (cpu)'
} }
[ordered]@{ machine = $machine; results = $results } | ConvertTo-Json -Depth 8 | Set-Content (Join-Path $OutputDirectory 'results.json')

function Format-Number([double] $v) { if ($v -ge 100) { '{0:N0}' -f $v } elseif ($v -ge 1) { '{0:N2}' -f $v } else { '{0:N4}' -f $v } }
$md = [System.Text.StringBuilder]::new()
[void]$md.AppendLine('# LoraShell benchmark results')
[void]$md.AppendLine()
[void]$md.AppendLine("Produced by ``$($machine.command)`` on $($machine.date). Machine: $($machine.cpu), $($machine.cores) cores, $($machine.memory_gib) GiB; .NET $($machine.dotnet), TorchSharp $($machine.torchsharp), libtorch $($machine.libtorch). Each scenario ran in a fresh process, $(if ($Quick) { 'once, with no warm-up (quick mode: proves the harness, not the speed)' } else { "once to warm up (discarded) and then $runs times" }); the table shows the median and the min..max spread.")
[void]$md.AppendLine()
[void]$md.AppendLine('| scenario | metric | median | spread (min..max) | settings |')
[void]$md.AppendLine('|---|---|---:|---|---|')
foreach ($name in ($all | Where-Object { $results.Contains($_) })) {
    $r = $results[$name]
    $settings = ($r.settings.GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Key): $($_.Value)" }) -join '; '
    foreach ($metric in $r.metrics.Keys) {
        $m = $r.metrics[$metric]
        $fmt = if ($metric -like '*_over_*') { { param($v) '{0:N4}' -f $v } } else { { param($v) Format-Number $v } }
        [void]$md.AppendLine("| $name | $metric | $(& $fmt $m.median) | $(& $fmt $m.min)..$(& $fmt $m.max) | $settings |")
    }
}
if ($results.Contains('forward-families')) {
    $x = $results['forward-families']
    [void]$md.AppendLine()
    [void]$md.AppendLine("## Forward speed by family (random models of the same size, $($x.settings['batch x seq']), float32)")
    [void]$md.AppendLine()
    [void]$md.AppendLine('| family | parameters | tokens/s | / Llama |')
    [void]$md.AppendLine('|---|---:|---:|---:|')
    foreach ($f in 'llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gpt2') {
        if (-not $x.metrics.Contains("$($f)_tokens_per_s")) { continue }
        [void]$md.AppendLine("| $f | $($x.settings[$f]) | $(Format-Number $x.metrics["$($f)_tokens_per_s"].median) | $('{0:N2}' -f $x.metrics["$($f)_over_llama"].median) |")
    }
}
$training = @($all | Where-Object { $_ -like 'train-stories*' -and $results.Contains($_) })
if ($training.Count) {
    [void]$md.AppendLine()
    [void]$md.AppendLine('## Fine-tuning stories260K on Tiny Shakespeare (one run each, same data, steps, seed, sequence length)')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| method | trainable params | validation loss before | after | ms/step | tokens/s | peak RSS MiB (allocator high-water) | run |')
    [void]$md.AppendLine('|---|---:|---:|---:|---:|---:|---:|---|')
    foreach ($name in $training) {
        $m = $results[$name].metrics
        [void]$md.AppendLine("| $($name -replace '^train-stories260K-', '') | $('{0:N0}' -f $m.trainable_params.median) | $('{0:N4}' -f $m.val_loss_before.median) | $('{0:N4}' -f $m.val_loss_after.median) | $(Format-Number $m.ms_per_step.median) | $(Format-Number $m.tokens_per_s.median) | $(Format-Number $m.peak_mib.median) | $($results[$name].settings.run) |")
    }
}
$sst2 = @($all | Where-Object { $_ -like 'train-sst2-*' -and $results.Contains($_) })
if ($sst2.Count) {
    [void]$md.AppendLine()
    [void]$md.AppendLine('## SST-2 sentiment classification from stories260K (one run each; a head on the last token''s hidden state)')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| method | trainable params | accuracy before | accuracy after | validation loss after | ms/step | run |')
    [void]$md.AppendLine('|---|---:|---:|---:|---:|---:|---|')
    foreach ($name in $sst2) {
        $m = $results[$name].metrics
        [void]$md.AppendLine("| $($name -replace '^train-sst2-', '') | $('{0:N0}' -f $m.trainable_params.median) | $('{0:P1}' -f $m.accuracy_before.median) | $('{0:P1}' -f $m.accuracy_after.median) | $('{0:N4}' -f $m.val_loss_after.median) | $(Format-Number $m.ms_per_step.median) | $($results[$name].settings.run) |")
    }
}
# Training memory at two batch sizes: 4 x 256 (weights dominate) and 16 x 256 (activations dominate, the
# regime of the LST paper, which trained T5 at batch 100 x 128).
$memoryBatches = @(@(4, ''), @(16, '-b16')) | Where-Object { $b = $_; @('full', 'lora', 'ladder' | Where-Object { $results.Contains("train-memory-synthetic50M-$_$($b[1])") }).Count -eq 3 }
if (@($memoryBatches).Count) {
    [void]$md.AppendLine()
    [void]$md.AppendLine('## Training memory: Full vs LoRA vs Ladder side-tuning (synthetic 50.5M-parameter Llama, sequence 256, fp32, CPU)')
    [void]$md.AppendLine()
    [void]$md.AppendLine('Peak RSS is the whole process; model memory is that peak less what the process held before the model existed (runtime, libtorch, JIT: the part a GPU allocator would not see), so it counts weights, training state and activations. LoRA is r 8 on all linear layers, Ladder k 8 on every layer.')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| method | batch | trainable params | peak RSS MiB | model memory MiB | saved vs Full (peak) | peak / LoRA peak | ms/step |')
    [void]$md.AppendLine('|---|---:|---:|---:|---:|---:|---:|---:|')
    $goals = @()
    foreach ($b in $memoryBatches) {
        $x = @{}; foreach ($m in 'full', 'lora', 'ladder') { $x[$m] = $results["train-memory-synthetic50M-$m$($b[1])"].metrics }
        foreach ($m in 'full', 'lora', 'ladder') {
            $model = if ($x[$m].Contains('model_mib')) { '{0:N0}' -f $x[$m].model_mib.median } else { '' }
            [void]$md.AppendLine("| $m | $($b[0]) x 256 | $('{0:N0}' -f $x[$m].trainable_params.median) | $('{0:N0}' -f $x[$m].peak_mib.median) | $model | $('{0:P0}' -f (1 - $x[$m].peak_mib.median / $x.full.peak_mib.median)) | $('{0:N2}' -f ($x[$m].peak_mib.median / $x.lora.peak_mib.median)) | $('{0:N0}' -f $x[$m].ms_per_step.median) |")
        }
        $loraRatio = $x.lora.peak_mib.median / $x.full.peak_mib.median; $ladderRatio = $x.ladder.peak_mib.median / $x.lora.peak_mib.median
        $goals += "batch $($b[0]) x 256: LoRA peak <= 0.5x Full: $('{0:N2}' -f $loraRatio)x ($(if ($loraRatio -le 0.5) { 'pass' } else { 'short' })); Ladder <= 0.45x LoRA: $('{0:N2}' -f $ladderRatio)x ($(if ($ladderRatio -le 0.45) { 'pass' } else { 'short' }))"
    }
    [void]$md.AppendLine()
    [void]$md.AppendLine("Goals, on peak RSS: $($goals -join '; '). The LST paper reports 69% saved by LST and about 26% by LoRA/Adapters against full fine-tuning of T5.")
}
# The same comparison on T5, the LST paper's own architecture: text-to-text SST-2 at batch 16.
if (@('full', 'lora', 'ladder' | Where-Object { $results.Contains("train-memory-t5small-$_-b16") }).Count -eq 3) {
    $x = @{}; foreach ($m in 'full', 'lora', 'ladder') { $x[$m] = $results["train-memory-t5small-$m-b16"].metrics }
    [void]$md.AppendLine()
    [void]$md.AppendLine('## Training memory on T5: Full vs LoRA vs Ladder side-tuning (t5-small shape, random weights, SST-2 text-to-text, batch 16, fp32, CPU)')
    [void]$md.AppendLine()
    [void]$md.AppendLine("The LST paper's setting on a smaller T5: inputs ""sst2 sentence: ..."" (up to 128 tokens), targets ""positive""/""negative"". LoRA is r 8 on q and v (PEFT's T5 default), Ladder k 8 beside every encoder and decoder block. $($results['train-memory-t5small-full-b16'].settings.run).")
    [void]$md.AppendLine()
    [void]$md.AppendLine('| method | trainable params | trainable share | peak RSS MiB | model memory MiB | saved vs Full (model memory) | model memory / LoRA | ms/step |')
    [void]$md.AppendLine('|---|---:|---:|---:|---:|---:|---:|---:|')
    foreach ($m in 'full', 'lora', 'ladder') {
        [void]$md.AppendLine("| $m | $('{0:N0}' -f $x[$m].trainable_params.median) | $('{0:P2}' -f ($x[$m].trainable_params.median / $x[$m].total_params.median)) | $('{0:N0}' -f $x[$m].peak_mib.median) | $('{0:N0}' -f $x[$m].model_mib.median) | $('{0:P0}' -f (1 - $x[$m].model_mib.median / $x.full.model_mib.median)) | $('{0:N2}' -f ($x[$m].model_mib.median / $x.lora.model_mib.median)) | $('{0:N0}' -f $x[$m].ms_per_step.median) |")
    }
    [void]$md.AppendLine()
    [void]$md.AppendLine("LST vs LoRA at batch 16: $('{0:N2}' -f ($x.ladder.model_mib.median / $x.lora.model_mib.median))x the model memory, $('{0:N2}' -f ($x.ladder.peak_mib.median / $x.lora.peak_mib.median))x the peak RSS. The paper (T5-base, GLUE, batch 100): LST saves 69% of full fine-tuning's memory, LoRA and Adapters about 26%.")
}
# Gradient checkpointing at batch 16 x 256, where activations dominate: the goal is LoRA <= 0.5x Full.
$ckptRows = @('full-b16', 'lora-b16', 'full-b16-ckpt', 'lora-b16-ckpt') | Where-Object { $results.Contains("train-memory-synthetic50M-$_") }
if (@($ckptRows).Count -eq 4) {
    $x = @{}; foreach ($k in $ckptRows) { $x[$k] = $results["train-memory-synthetic50M-$k"].metrics }
    [void]$md.AppendLine()
    [void]$md.AppendLine('## Gradient checkpointing (synthetic 50.5M, batch 16 x 256, fp32): each decoder layer keeps only its input and is recomputed in backward')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| method | checkpointing | peak RSS MiB | model memory MiB | peak / Full without | ms/step |')
    [void]$md.AppendLine('|---|---|---:|---:|---:|---:|')
    foreach ($k in $ckptRows) {
        [void]$md.AppendLine("| $($k -replace '-b16.*$', '') | $(if ($k -like '*-ckpt') { 'yes' } else { 'no' }) | $('{0:N0}' -f $x[$k].peak_mib.median) | $('{0:N0}' -f $x[$k].model_mib.median) | $('{0:N2}' -f ($x[$k].peak_mib.median / $x['full-b16'].peak_mib.median)) | $('{0:N0}' -f $x[$k].ms_per_step.median) |")
    }
    $vsFull = $x['lora-b16-ckpt'].peak_mib.median / $x['full-b16'].peak_mib.median
    $vsFullCkpt = $x['lora-b16-ckpt'].peak_mib.median / $x['full-b16-ckpt'].peak_mib.median
    [void]$md.AppendLine()
    [void]$md.AppendLine("Goal, on peak RSS: LoRA with checkpointing <= 0.5x Full: $('{0:N2}' -f $vsFull)x of Full without checkpointing ($(if ($vsFull -le 0.5) { 'pass' } else { 'short' })), $('{0:N2}' -f $vsFullCkpt)x of Full with it ($(if ($vsFullCkpt -le 0.5) { 'pass' } else { 'short' })).")
}
# GGUF at 1B scale: export and import of the TinyLlama-shaped model, and generation against llama.cpp.
$ggufTypes = @('f16', 'q8_0' | Where-Object { $results.Contains("gguf-export-tinyllama1b-$_") -and $results.Contains("gguf-import-tinyllama1b-$_") })
if ($ggufTypes.Count) {
    [void]$md.AppendLine()
    [void]$md.AppendLine("## GGUF at 1B scale (TinyLlama-1.1B's shape, random weights, one run each)")
    [void]$md.AppendLine()
    [void]$md.AppendLine('Export converts a tensor at a time from the float32 model, so its peak over the model should stay near one tensor (the largest, the embedding, is 250 MiB in float32); import dequantizes a tensor at a time into the float32 model it builds.')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| type | file MiB | export s | export MB/s | export peak over the model MiB | import s | import peak MiB | import peak / model |')
    [void]$md.AppendLine('|---|---:|---:|---:|---:|---:|---:|---:|')
    foreach ($t in $ggufTypes) {
        $e = $results["gguf-export-tinyllama1b-$t"].metrics; $i = $results["gguf-import-tinyllama1b-$t"].metrics
        [void]$md.AppendLine("| $($t.ToUpperInvariant()) | $(Format-Number $e.file_mib.median) | $(Format-Number $e.seconds.median) | $(Format-Number $e.mb_per_s.median) | $(Format-Number $e.peak_over_model_mib.median) | $(Format-Number $i.seconds.median) | $(Format-Number $i.peak_over_baseline_mib.median) | $('{0:N2}' -f $i.peak_over_model.median) |")
    }
}
if ($results.Contains('gguf-generate-tinyllama1b-vs-llamacpp')) {
    $g = $results['gguf-generate-tinyllama1b-vs-llamacpp']
    [void]$md.AppendLine()
    [void]$md.AppendLine("## Generation: LoraShell vs llama.cpp on the same model ($($g.settings.run))")
    [void]$md.AppendLine()
    [void]$md.AppendLine('| runtime | weights | tokens/s |')
    [void]$md.AppendLine('|---|---|---:|')
    [void]$md.AppendLine("| LoraShell (TorchSharp) | float32 | $(Format-Number $g.metrics.lorashell_f32_tokens_per_s.median) |")
    foreach ($t in 'f32', 'f16', 'q8_0') { [void]$md.AppendLine("| llama.cpp | $($t.ToUpperInvariant()) GGUF | $(Format-Number $g.metrics["llamacpp_$($t)_tokens_per_s"].median) |") }
    [void]$md.AppendLine()
    [void]$md.AppendLine("On the same float32 weights LoraShell generates at $('{0:N2}' -f $g.metrics.lorashell_over_llamacpp_f32.median)x llama.cpp's rate; llama.cpp's F16 and Q8_0 files read half and a quarter of the bytes per token, which is what batch-1 decoding on a CPU is bound by.")
}
# A 1B-class model: TinyLlama-1.1B's shape, LoRA on a float32, bfloat16, int8 or NF4 base.
$big = @('fp32', 'bf16', 'int8', 'nf4' | ForEach-Object { $_, "$_-ckpt" } | Where-Object { $results.Contains("train-tinyllama1b-lora-$_") })
if ($big.Count) {
    $first = $results["train-tinyllama1b-lora-$($big[0])"]
    [void]$md.AppendLine()
    [void]$md.AppendLine("## A 1B-class model on this machine: LoRA on TinyLlama-1.1B's shape ($($first.settings.parameters) parameters, random weights loaded from a bfloat16 Hugging Face folder; $($first.settings.run))")
    [void]$md.AppendLine()
    [void]$md.AppendLine('Model MiB is what the weights occupy in memory (quantized projections with their scales); loading peak is the process''s peak RSS while loading, less the runtime; training peak the same during training; the estimate is Measure-LoraMemory''s figure for the same run.')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| base | checkpointing | model MiB | loading peak MiB | training peak MiB | estimate MiB | estimate / measured | s/step | load s |')
    [void]$md.AppendLine('|---|---|---:|---:|---:|---:|---:|---:|---:|')
    foreach ($k in $big) {
        $m = $results["train-tinyllama1b-lora-$k"].metrics
        [void]$md.AppendLine("| $($results["train-tinyllama1b-lora-$k"].settings.base) | $(if ($k -like '*-ckpt') { 'yes' } else { 'no' }) | $('{0:N0}' -f $m.model_mib.median) | $('{0:N0}' -f $m.load_peak_mib.median) | $('{0:N0}' -f $m.training_peak_mib.median) | $('{0:N0}' -f $m.estimate_mib.median) | $('{0:N2}' -f $m.estimate_over_measured.median) | $('{0:N1}' -f ($m.ms_per_step.median / 1000)) | $('{0:N1}' -f $m.load_s.median) |")
    }
}
if ($results.Contains('svd-sweep-stories260K')) {
    $x = $results['svd-sweep-stories260K'].metrics
    [void]$md.AppendLine()
    [void]$md.AppendLine("## SVD-compressed full fine-tune, merged back ($($results['svd-sweep-stories260K'].settings.run))")
    [void]$md.AppendLine()
    [void]$md.AppendLine('| model | validation loss | adapter KiB | mean relative error of ΔW_r |')
    [void]$md.AppendLine('|---|---:|---:|---:|')
    [void]$md.AppendLine("| base | $('{0:N4}' -f $x.base_val_loss.median) | | |")
    foreach ($rank in 1, 2, 4, 8, 16, 32) {
        [void]$md.AppendLine("| rank $rank | $('{0:N4}' -f $x["r$($rank)_val_loss"].median) | $('{0:N1}' -f $x["r$($rank)_adapter_kib"].median) | $('{0:N4}' -f $x["r$($rank)_mean_rel_error"].median) |")
    }
    [void]$md.AppendLine("| full fine-tuning | $('{0:N4}' -f $x.full_ft_val_loss.median) | | |")
    $smallest = $x['smallest_rank_within_0.05'].median
    [void]$md.AppendLine()
    [void]$md.AppendLine("Smallest rank within 0.05 nats of full fine-tuning: $(if ($smallest -lt 0) { 'none up to 32' } else { $smallest }).")
}
$peers = @('stories260K', 'synthetic50M', 'synthetic50M-all-b16', 'tinyllama1b-all') | Where-Object { $results.Contains("lora-step-vs-pytorch-$_") -and $results["lora-step-vs-pytorch-$_"].metrics.Contains('ours_over_pytorch') }
if (@($peers).Count) {
    [void]$md.AppendLine()
    [void]$md.AppendLine('## LoRA training step: LoraShell vs eager PyTorch (bench/peer/lora_step.py, Debian python3-torch 1.13 + OpenBLAS, same threads)')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| model | ours ms/step | PyTorch ms/step | ours / PyTorch | goal <= 0.9x | loss diff, step 1 | loss diff, last step |')
    [void]$md.AppendLine('|---|---:|---:|---:|---|---:|---:|')
    foreach ($p in $peers) {
        $x = $results["lora-step-vs-pytorch-$p"].metrics
        $ratio = $x.ours_over_pytorch.median
        [void]$md.AppendLine("| $p ($($results["lora-step-vs-pytorch-$p"].settings.run)) | $(Format-Number $x.ours_ms_per_step.median) | $(Format-Number $x.pytorch_ms_per_step.median) | $('{0:N3}' -f $ratio) | $(if ($ratio -le 0.9) { 'pass' } else { 'short' }) | $('{0:E1}' -f $x.first_loss_abs_diff.median) | $('{0:E1}' -f $x.last_loss_abs_diff.median) |")
    }
    [void]$md.AppendLine()
    [void]$md.AppendLine('Same weights, LoRA factors (r 8, alpha 16, on the projections each row names, random non-zero init), batch and AdamW settings on both sides; the loss columns check that both compute the same thing (goal: < 1e-4).')
}
# Training step speed as the work grows (issue 27): each row against the GEMM rate measured between its own steps.
$speed50 = @(foreach ($m in 'lora', 'full') { foreach ($b in '-b1', '-b4', '-b8', '-b16', '-b16-accum4', '-b16-ckpt') { "train-speed-synthetic50M-$m$b" } }) | Where-Object { $results.Contains($_) }
$speed1b = @(foreach ($f in 'fp32', 'int8', 'nf4') { foreach ($c in '', '-ckpt') { "train-speed-tinyllama1b-lora-$f$c" } }) | Where-Object { $results.Contains($_) }
if (@($speed50).Count + @($speed1b).Count) {
    [void]$md.AppendLine()
    [void]$md.AppendLine('## Training step speed at real sizes (the trainer a user runs; fp32 compute, no per-step memory trimming)')
    [void]$md.AppendLine()
    [void]$md.AppendLine('| run | ms/step | µs/token | ideal GFLOP | GFLOP/s | GEMM GFLOP/s (same run) | share of GEMM | share, each step vs the GEMM after it | goal >= 60% (LoRA) | dequantization ms/step | share without it | loss, first / last step |')
    [void]$md.AppendLine('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|')
    foreach ($name in @($speed50) + @($speed1b)) {
        $x = $results[$name].metrics
        # The paired share (each step against the GEMM sampled right after it) is the one the goal reads; runs too short to pair fall back.
        $share = if ($x.Contains('share_of_gemm_paired')) { $x.share_of_gemm_paired.median } else { $x.share_of_gemm.median }
        # The goal names LoRA all-linear at 16 x 256 on the 50M model and the 1.1B shape; the other rows show the trend.
        $goal = if ($name -notlike '*-lora-b16*' -and $name -notlike '*tinyllama1b*') { '' } elseif ($share -ge 0.6) { 'pass' } else { 'short' }
        $paired = if ($x.Contains('share_of_gemm_paired')) { '{0:P0}' -f $x.share_of_gemm_paired.median } else { '' }
        $dequant = if ($x.Contains('dequant_ms_per_step')) { '{0:N0}' -f $x.dequant_ms_per_step.median } else { '' }
        $without = if ($x.Contains('share_of_gemm_without_dequant')) { '{0:P0}' -f $x.share_of_gemm_without_dequant.median } else { '' }
        [void]$md.AppendLine("| $($results[$name].settings.run) | $('{0:N0}' -f $x.ms_per_step.median) | $('{0:N0}' -f $x.us_per_token.median) | $('{0:N0}' -f $x.ideal_gflop.median) | $('{0:N1}' -f $x.gflops.median) | $('{0:N1}' -f $x.gemm_gflops.median) | $('{0:P0}' -f $x.share_of_gemm.median) | $paired | $goal | $dequant | $without | $('{0:N6}' -f $x.first_loss.median) / $('{0:N6}' -f $x.last_loss.median) |")
    }
    [void]$md.AppendLine()
    $m = @{}; foreach ($name in $speed50) { $m[$name -replace '^train-speed-synthetic50M-', ''] = $results[$name].metrics }
    $lines = @()
    # Ratios between runs are taken at equal GEMM rate (time x the run's GEMM rate), so host drift between processes cancels.
    function AtEqualGemm($a, $b, [string] $metric) { ($a[$metric].median * $a.gemm_gflops.median) / ($b[$metric].median * $b.gemm_gflops.median) }
    foreach ($k in 'lora-b16', 'lora-b16-accum4') {
        if ($m.Contains('lora-b4') -and $m.Contains($k)) { $r = AtEqualGemm $m[$k] $m['lora-b4'] 'us_per_token'; $lines += "per-token time, LoRA $($k -replace 'lora-b16', 'batch 16' -replace '-accum4', ' as 4 accumulated micro-batches of 4') / batch 4: $('{0:N2}' -f $r)x at equal GEMM rate (goal <= 1.15x: $(if ($r -le 1.15) { 'pass' } else { 'short' }))" }
    }
    if ($m.Contains('full-b4') -and $m.Contains('full-b16')) { $r = AtEqualGemm $m['full-b16'] $m['full-b4'] 'us_per_token'; $lines += "per-token time, Full batch 16 / batch 4: $('{0:N2}' -f $r)x at equal GEMM rate" }
    foreach ($b in 'b4', 'b16', 'b16-ckpt') {
        if ($m.Contains("lora-$b") -and $m.Contains("full-$b")) {
            $r = AtEqualGemm $m["lora-$b"] $m["full-$b"] 'ms_per_step'
            # With checkpointing both recompute one forward (2·N·T): the FLOP ratio is 6/8, so 0.75x is its floor.
            $flops = if ($b -like '*-ckpt') { 0.75 } else { 4 / 6 }
            $lines += "LoRA step / Full step at $(if ($b -like '*-ckpt') { 'batch 16 x 256 with checkpointing' } else { "batch $($b.Substring(1)) x 256" }): $('{0:N2}' -f $r)x at equal GEMM rate (goal <= 0.75x: $(if ($r -le 0.75) { 'pass' } else { 'short' }); the FLOP ratio is $('{0:N2}' -f $flops)x)"
        }
    }
    foreach ($l in $lines) { [void]$md.AppendLine("- $l") }
    [void]$md.AppendLine()
    [void]$md.AppendLine('Ideal FLOPs count the matmul weights N (every projection and the head; attention scores excluded) per token T: 4·N·T for a frozen base (forward and input gradients), 6·N·T for Full, 2·N·T more with checkpointing. This machine''s GEMM rate drifts by a third between processes (a shared host), so each row is divided by the 2048² GEMM rate sampled between its own steps.')
}
# Model FLOPs utilisation against this machine's measured GEMM throughput (forward: 2·P FLOPs per token; training: 6·P).
if ($results.Contains('gemm')) {
    $gemm = $results['gemm'].metrics.gflops.median
    $rows = @()
    if ($results.Contains('forward-synthetic50M')) { $rows += ,@('forward, synthetic 50.5M, batch 4 x 256', ([double]2 * 50473472 * [double]$results['forward-synthetic50M'].metrics.tokens_per_s.median / 1e9)) }
    if ($results.Contains('train-memory-synthetic50M-full')) { $rows += ,@('full fine-tuning step, synthetic 50.5M, batch 4 x 256', ([double]6 * 50473472 * 1024 / ([double]$results['train-memory-synthetic50M-full'].metrics.ms_per_step.median / 1000) / 1e9)) }
    if ($rows.Count) {
        [void]$md.AppendLine()
        [void]$md.AppendLine("## Model FLOPs utilisation (against $('{0:N0}' -f $gemm) GFLOP/s measured fp32 GEMM)")
        [void]$md.AppendLine()
        [void]$md.AppendLine('| workload | model GFLOP/s | MFU | goal >= 40% |')
        [void]$md.AppendLine('|---|---:|---:|---|')
        foreach ($row in $rows) { [void]$md.AppendLine("| $($row[0]) | $('{0:N1}' -f $row[1]) | $('{0:P0}' -f ($row[1] / $gemm)) | $(if ($row[1] / $gemm -ge 0.4) { 'pass' } else { 'short' }) |") }
        [void]$md.AppendLine()
        [void]$md.AppendLine('FLOPs are counted from the shapes as 2·P per token forward and 6·P per token for a training step (attention scores excluded), P = 50,473,472.')
    }
}
# Charts of the headline numbers, drawn by the module's own Export-LoraChart as PNG and linked here.
$chartFolder = Join-Path $OutputDirectory 'charts'
if ((Test-Path (Join-Path $repo 'module/LoraShell/bin/LoraShell.dll')) -and (Get-Command chromium -ErrorAction Ignore)) {
    Import-Module (Join-Path $repo 'module/LoraShell/LoraShell.psd1')
    New-Item -ItemType Directory -Force $chartFolder | Out-Null
    $drawn = [System.Collections.Generic.List[object]]::new()
    function Out-Chart([string] $name, [string] $title, [object[]] $bars, [hashtable] $style = @{}) {
        if (@($bars).Count -eq 0) { return }
        $bars | Export-LoraChart -Path (Join-Path $chartFolder "$name.png") -Title $title -Force @style | Out-Null
        $drawn.Add(@($name, $title))
    }
    # One bar per measurement: its median, and the lowest and highest run as error bars where it ran more than once.
    function Bar([string] $name, $metric, [string] $series) {
        $bar = [ordered]@{ Name = $name; Value = $metric.median }
        if ($series) { $bar.Series = $series }
        if ($metric.runs -gt 1) { $bar.Low = $metric.min; $bar.High = $metric.max }
        [pscustomobject]$bar
    }
    Out-Chart 'training-memory' 'Peak RSS while training the synthetic 50.5M model' -style @{ YAxisTitle = 'peak resident memory (MiB)' } @(
        foreach ($b in @(@(4, ''), @(16, '-b16'))) {
            'full', 'lora', 'ladder' | Where-Object { $results.Contains("train-memory-synthetic50M-$_$($b[1])") } |
                ForEach-Object { Bar $_ $results["train-memory-synthetic50M-$_$($b[1])"].metrics.peak_mib "batch $($b[0]) x 256" }
        })
    # The untrained model is the reference a trained one is read against: its validation loss, its SST-2 accuracy.
    $before = @($training | ForEach-Object { $results[$_].metrics.val_loss_before.median })[0]
    Out-Chart 'tinyshakespeare-loss' 'Validation loss on Tiny Shakespeare after training (lower is better)' -style (@{ YAxisTitle = 'validation loss (nats)' } + $(if ($before) { @{ Baseline = $before; BaselineName = 'before training' } } else { @{} })) @(
        $training | ForEach-Object { Bar ($_ -replace '^train-stories260K-', '') $results[$_].metrics.val_loss_after })
    $chance = @($sst2 | ForEach-Object { $results[$_].metrics.accuracy_before.median })[0]
    Out-Chart 'sst2-accuracy' 'SST-2 validation accuracy after training' -style (@{ YAxisTitle = 'accuracy on 1,000 validation sentences' } + $(if ($chance) { @{ Baseline = $chance; BaselineName = 'before training' } } else { @{} })) @(
        $sst2 | ForEach-Object { Bar ($_ -replace '^train-sst2-', '') $results[$_].metrics.accuracy_after })
    $ratios = @()
    if ($results.Contains('lora-forward-synthetic50M')) {
        $x = $results['lora-forward-synthetic50M'].metrics
        $ratios += Bar 'merged LoRA / base forward' $x.merged_over_base
        $ratios += Bar 'unmerged LoRA r8 / base forward' $x.lora_r8_over_base
    }
    foreach ($p in 'stories260K', 'synthetic50M') {
        if ($results.Contains("lora-step-vs-pytorch-$p")) { $ratios += Bar "LoRA step, ours / PyTorch ($p)" $results["lora-step-vs-pytorch-$p"].metrics.ours_over_pytorch }
    }
    Out-Chart 'time-per-token' 'Training time per token by batch size, synthetic 50.5M, sequence 256 (lower is better)' -style @{ YAxisTitle = 'µs per token (median step)' } @(
        foreach ($m in 'lora', 'full') {
            foreach ($b in 1, 4, 8, 16) {
                if ($results.Contains("train-speed-synthetic50M-$m-b$b")) { Bar "batch $b" $results["train-speed-synthetic50M-$m-b$b"].metrics.us_per_token $(if ($m -eq 'lora') { 'LoRA r8 all-linear' } else { 'Full' }) }
            }
        })
    Out-Chart 'ratios' 'Ratios (1 = parity; lower is better)' -style @{ YAxisTitle = 'ratio (median of runs)'; Baseline = 1; BaselineName = 'parity' } $ratios
    if ($drawn.Count) {
        [void]$md.AppendLine()
        [void]$md.AppendLine('## Charts')
        foreach ($c in $drawn) { [void]$md.AppendLine(); [void]$md.AppendLine("![$($c[1])](charts/$($c[0]).png)") }
    }
}
$extra = Join-Path $PSScriptRoot 'NOTES.md'
if (Test-Path $extra) { [void]$md.AppendLine(); [void]$md.Append((Get-Content -Raw $extra)) }
Set-Content -Path (Join-Path $OutputDirectory 'RESULTS.md') -Value $md.ToString()
Write-Host "bench: wrote $(Join-Path $OutputDirectory 'RESULTS.md')"
