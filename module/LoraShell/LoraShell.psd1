@{
    RootModule           = 'bin/LoraShell.dll'
    ModuleVersion        = '0.2.0'
    GUID                 = '6f0c3a53-4c1e-4a59-9f62-7d1d2b8e4a10'
    Author               = 'LoraShell contributors'
    CompanyName          = 'LoraShell'
    Copyright            = '(c) LoraShell contributors. MIT License.'
    Description          = 'Parameter-efficient fine-tuning for PowerShell: LoRA adapters in Hugging Face PEFT format, Ladder Side-Tuning and SVD delta compression over TorchSharp decoders of Llama 2/3, Mistral, Qwen2/3, Phi-3 and GPT-2. Linux x64 (libtorch CPU).'
    CompatiblePSEditions = @('Core')
    # The assemblies target .NET 10: pwsh 7.6 runs on it, and so do .NET 10 hosts of the PowerShell 7.5 SDK
    # (.NET Interactive's kernel). 7.5 is the oldest that can work; LoraShell.Init.ps1 refuses an older
    # .NET with a clear message (pwsh 7.5 itself runs on .NET 9).
    PowerShellVersion    = '7.5'
    ScriptsToProcess     = @('LoraShell.Init.ps1')
    FormatsToProcess     = @('LoraShell.format.ps1xml')
    CmdletsToExport      = @(
        'Add-LoraAdapter'
        'ConvertFrom-LoraToken'
        'ConvertTo-LoraChatPrompt'
        'ConvertTo-LoraToken'
        'Disable-LoraAdapter'
        'Enable-LoraAdapter'
        'Export-LoraChart'
        'Export-LoraModel'
        'Export-LoraTrainingJob'
        'Get-LoraAdapter'
        'Get-LoraBackend'
        'Import-LoraAdapter'
        'Import-LoraModel'
        'Install-LoraBackend'
        'Invoke-LoraGeneration'
        'Invoke-SvdDelta'
        'Join-LoraAdapter'
        'Measure-LoraMemory'
        'Measure-LoraPerplexity'
        'Merge-LoraWeights'
        'Remove-LoraAdapter'
        'Remove-LoraModel'
        'Save-LoraAdapter'
        'Set-LoraAdapter'
        'Start-LoraTraining'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('LoRA', 'PEFT', 'QLoRA', 'fine-tuning', 'LLM', 'Llama', 'Qwen', 'TorchSharp', 'machine-learning', 'SVD', 'PSEdition_Core', 'Linux')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ProjectUri   = 'https://github.com/lorashell/lorashell'
            ReleaseNotes = '0.2.0: installable with Install-PSResource (a package without libtorch, 21 MB); libtorch comes per user from your NuGet sources on first use or with Install-LoraBackend (CPU or CUDA; -Path a local libtorch 2.10), and Get-LoraBackend says which is loaded; Export-LoraTrainingJob writes a LoRA or QLoRA run as an Accelerate job folder (TRL SFTTrainer, PEFT LoraConfig, FSDP or ZeRO-3) for runs bigger than one machine; DoRA, LoRA+, modules_to_save, trainable token rows, adapter combination (Join-LoraAdapter) and GGUF export for llama.cpp and Ollama. 0.1.0: six model families (Llama 2/3, Mistral, Qwen2, Qwen3, Phi-3, GPT-2) from Hugging Face folders and llama2.c checkpoints; Hugging Face tokenizer.json and chat templates; LoRA in PEFT format (add, train, save, import, merge, unmerge, enable, disable, remove); Full, LoRA and Ladder side-tuning for text, chat and classification with checkpoints, exact resume and gradient checkpointing; NF4 and int8 frozen bases (QLoRA); SVD delta compression to PEFT adapters; training memory estimates; every failure a named error (about_LoraShell lists them). Set-, Enable-, Disable- and Remove-LoraAdapter write nothing unless -PassThru (then the model); -Name completes adapter names; typed Method, Task, Status and Shape; help examples with their output; charts with titled axes, baselines (-Baseline) and spread (Low/High).'
        }
    }
}
