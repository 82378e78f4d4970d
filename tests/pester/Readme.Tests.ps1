# The README's PowerShell blocks run as written, in order, from a repository root with shared/ beside it,
# as a new user pastes them: one fresh pwsh, errors stop it. Blocks that need a model you download
# (the README says which) are left out.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
}

Describe 'README' {
    It 'runs every PowerShell block that needs nothing but shared/' {
        $readme = Get-Content -Raw (Join-Path $RepoRoot 'README.md')
        $blocks = [regex]::Matches($readme, '(?ms)^```powershell\r?\n(.*?)^```') | ForEach-Object { $_.Groups[1].Value }
        $runnable = @($blocks | Where-Object { $_ -notmatch '\./Qwen3-0\.6B|\./TinyLlama' })
        $runnable.Count | Should -BeGreaterOrEqual 4
        $scratch = New-TestFolder
        try {
            New-Item -ItemType SymbolicLink -Path (Join-Path $scratch 'shared') -Target $Shared | Out-Null
            $repo = New-Item -ItemType Directory -Path (Join-Path $scratch 'repo')
            New-Item -ItemType SymbolicLink -Path (Join-Path $repo 'module') -Target (Join-Path $RepoRoot 'module') | Out-Null
            $script = Join-Path $repo 'readme.ps1'
            Set-Content $script ("`$ErrorActionPreference = 'Stop'`n" + ($runnable -join "`n"))
            Push-Location $repo
            try { $output = pwsh -NoProfile -NonInteractive -File $script 2>&1 | Out-String -Width 200 }
            finally { Pop-Location }
            $LASTEXITCODE | Should -Be 0 -Because $output
            foreach ($written in 'out/stories260K-hf/config.json', 'out/lora/adapter/adapter_model.safetensors', 'out/lora-again/adapter_config.json',
                'out/merged/model.safetensors', 'out/lst/side-network', 'out/delta/adapter_config.json', 'out/gguf/stories.gguf',
                'out/gguf/shakespeare-lora.Modelfile', 'out/gguf/shakespeare-q8.gguf') {
                Test-Path (Join-Path $repo $written) | Should -BeTrue -Because "the README's commands write $written"
            }
            $output | Should -Match 'Once upon a time, there was a little girl named Lily'
        }
        finally { Remove-Item -Recurse -Force $scratch }
    }
}
