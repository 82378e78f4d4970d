@{
    RootModule           = 'bin/LoraShell.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '6f0c3a53-4c1e-4a59-9f62-7d1d2b8e4a10'
    Author               = 'LoraShell contributors'
    CompanyName          = 'LoraShell'
    Copyright            = '(c) LoraShell contributors. MIT License.'
    Description          = 'Parameter-efficient fine-tuning for PowerShell: LoRA adapters in Hugging Face PEFT format, Ladder Side-Tuning and SVD delta compression over a TorchSharp Llama core.'
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.4'
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
        'Get-LoraAdapter'
        'Import-LoraAdapter'
        'Import-LoraModel'
        'Invoke-LoraGeneration'
        'Invoke-SvdDelta'
        'Measure-LoraMemory'
        'Measure-LoraPerplexity'
        'Merge-LoraWeights'
        'Remove-LoraAdapter'
        'Save-LoraAdapter'
        'Set-LoraAdapter'
        'Start-LoraTraining'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('LoRA', 'PEFT', 'fine-tuning', 'LLM', 'Llama', 'TorchSharp', 'machine-learning', 'SVD')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ProjectUri   = 'https://github.com/lorashell/lorashell'
            ReleaseNotes = 'Foundation (model import/export, generation, perplexity) and LoRA adapters in PEFT format (add, list, save, import, merge, unmerge, activate, disable, remove).'
        }
    }
}
