# Dot-sourced by every *.Tests.ps1: imports the built module and finds ../shared.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
Import-Module (Join-Path $RepoRoot 'module/LoraShell/LoraShell.psd1')
$script:Shared = if ($env:LORASHELL_SHARED) { $env:LORASHELL_SHARED } else { (Resolve-Path (Join-Path $RepoRoot '../shared')).Path }
$script:StoriesPath = Join-Path $Shared 'models/stories260K/stories260K.bin'
$script:Greedy200 = Join-Path $Shared 'models/stories260K/greedy200.txt'

function New-TestFolder {
    $p = Join-Path ([System.IO.Path]::GetTempPath()) ("lorashell-pester-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $p | Out-Null
    $p
}

# Runs a script block and returns the ErrorRecord it throws (or fails the test if it does not throw).
function Get-ThrownError([scriptblock] $Script) {
    try { & $Script | Out-Null } catch { return $_ }
    throw "Expected an error, but the script completed."
}

# The first 20,000 characters of Tiny Shakespeare as a text file in $Folder: enough for a few training steps.
function New-ShakespeareSample([string] $Folder) {
    $path = Join-Path $Folder 's.txt'
    Set-Content -Path $path -Value (Get-Content -Raw (Join-Path $Shared 'data/tinyshakespeare/input.txt')).Substring(0, 20000) -NoNewline
    $path
}

# Saves the model's active adapter to $Folder and imports it into a fresh stories260K: the copy gives the same
# loss, and Measure-LoraMemory counts the trainable parameters Get-LoraAdapter does.
function Assert-AdapterRoundTrip($Model, [string] $Folder) {
    $Model | Save-LoraAdapter -Path $Folder | Out-Null
    $probe = 'Once upon a time, there was a little girl.'
    $back = Import-LoraModel $StoriesPath | Import-LoraAdapter $Folder
    ($back | Measure-LoraPerplexity -Text $probe).Loss | Should -Be ($Model | Measure-LoraPerplexity -Text $probe).Loss
    (Measure-LoraMemory -Model $back -Method Lora -BatchSize 4 -SequenceLength 64).TrainableParameters |
        Should -Be ($back | Get-LoraAdapter).TrainableParameters
}

# A small random checkpoint of any family, written by the module's own core (HF layout, nn defaults):
# for tests that need a family's names and shapes, not trained weights.
function New-TinyFamilyModel([string] $Family, [string] $Folder) {
    $config = switch ($Family) {
        'gpt2' { '{"model_type":"gpt2","n_embd":32,"n_layer":2,"n_head":4,"n_positions":64,"vocab_size":512,"bos_token_id":0,"eos_token_id":0}' }
        'phi3' { '{"model_type":"phi3","hidden_size":32,"intermediate_size":48,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":64,"bos_token_id":1,"eos_token_id":2}' }
        default { '{"model_type":"' + $Family + '","hidden_size":32,"intermediate_size":48,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,"max_position_embeddings":64}' }
    }
    $model = [LoraShell.Core.Models.CausalLM]::new([LoraShell.Core.Models.ModelConfig]::FromJson($config, "$Family test config"))
    try { [LoraShell.Core.Models.HuggingFaceWriter]::Save($model, $Folder, $false, $null) | Out-Null } finally { $model.Dispose() }
    Copy-Item (Join-Path $Shared 'models/stories260K/tok512.bin') $Folder
    $Folder
}

# A small random T5 (HF layout, written by the module's own core, nn defaults) with tok512.bin beside it.
function New-TinyT5Model([string] $Folder, [switch] $Gated) {
    $ff = if ($Gated) { 'gated-gelu' } else { 'relu' }
    $config = '{"model_type":"t5","vocab_size":512,"d_model":32,"d_kv":8,"d_ff":64,"num_layers":2,"num_heads":4,"relative_attention_num_buckets":8,"relative_attention_max_distance":32,"feed_forward_proj":"' + $ff + '","eos_token_id":2,"pad_token_id":0,"decoder_start_token_id":0}'
    $model = [LoraShell.Core.Models.T5.T5ForConditionalGeneration]::new([LoraShell.Core.Models.T5.T5Config]::FromJson($config, 't5 test config'))
    try { [LoraShell.Core.Models.T5.T5Writer]::Save($model, $Folder, $false, [string[]] @((Join-Path $Shared 'models/stories260K/tok512.bin'))) | Out-Null } finally { $model.Dispose() }
    $Folder
}

# Compares what an example printed with the output its help shows: the text exactly (runs of spaces
# and trailing blanks aside) and every number to within 1% (or 0.01), because float results differ
# in their last digits between CPUs and the help shows them rounded.
function Assert-SameOutput([string] $Actual, [string] $Expected, [string] $Because) {
    $number = '-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?'
    function Lines([string] $text) {
        $lines = @(($text -replace "`r", '') -split "`n" | ForEach-Object { ($_.TrimEnd() -replace '\s+', ' ') })
        $first = 0; while ($first -lt $lines.Count -and -not $lines[$first]) { $first++ }
        $last = $lines.Count - 1; while ($last -ge $first -and -not $lines[$last]) { $last-- }
        if ($last -lt $first) { return , @() }
        return , $lines[$first..$last]
    }
    $a = Lines $Actual; $e = Lines $Expected
    $a.Count | Should -Be $e.Count -Because "$Because printed`n$($a -join "`n")"
    for ($i = 0; $i -lt $e.Count; $i++) {
        $aText = [regex]::Replace($a[$i], $number, '#'); $eText = [regex]::Replace($e[$i], $number, '#')
        $aText | Should -BeExactly $eText -Because "line $($i + 1) of $Because"
        $aNums = @([regex]::Matches($a[$i], $number).Value | ForEach-Object { [double]($_ -replace ',', '') })
        $eNums = @([regex]::Matches($e[$i], $number).Value | ForEach-Object { [double]($_ -replace ',', '') })
        for ($j = 0; $j -lt $eNums.Count; $j++) {
            [math]::Abs($aNums[$j] - $eNums[$j]) | Should -BeLessOrEqual ([math]::Max(0.01, 0.01 * [math]::Abs($eNums[$j]))) -Because "number $($j + 1) on line $($i + 1) ('$($e[$i])' vs '$($a[$i])') of $Because"
        }
    }
}
