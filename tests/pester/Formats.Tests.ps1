BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestFolder
    $script:Data = Join-Path $Shared 'data/tinyshakespeare/input.txt'
    [xml]$script:formats = Get-Content (Join-Path $RepoRoot 'module/LoraShell/LoraShell.format.ps1xml') -Raw
    # The first column's label of each type's table view.
    $script:FirstLabel = @{}
    foreach ($view in $formats.Configuration.ViewDefinitions.View) {
        $FirstLabel[$view.ViewSelectedBy.TypeName] = @($view.TableControl.TableHeaders.TableColumnHeader)[0].Label
    }
}
AfterAll { Remove-Item -Recurse -Force $Dir }

Describe 'Every format view renders' {
    It 'renders a table for every LoraShell output type' {
        $model = Import-LoraModel $StoriesPath
        $base = Join-Path $Dir 'base'
        $model | Export-LoraModel $base | Out-Null
        $full = Import-LoraModel $StoriesPath | Start-LoraTraining -Method Full -DataPath $Data -MaxSteps 3 -BatchSize 2 -SequenceLength 32 -MaxEvalWindows 2 -OutputPath (Join-Path $Dir 'ft')
        $svd = @(Invoke-SvdDelta -BasePath $base -FineTunedPath $full.ModelPath -OutputPath (Join-Path $Dir 'delta') -Rank 2)
        $objects = @(
            $model
            $model | Add-LoraAdapter -Name probe -Rank 2 | Get-LoraAdapter
            $model | Measure-LoraPerplexity -Text 'Once upon a time'
            $model | Invoke-LoraGeneration -MaxTokens 3 -Temperature 0 -Detailed
            $full
            $full.Evaluations[0]
            $svd[0]
            $svd[-1]
            Measure-LoraMemory -Preset stories260K -Method Lora
            $model | ConvertTo-LoraToken -Text 'Once' | Select-Object -First 1
            $model | Export-LoraTrainingJob -DataPath $Data -Path (Join-Path $Dir 'job') -ModelId example/stories260K-hf -MaxSteps 1
            Get-LoraBackend
        )
        $seen = @{}
        foreach ($o in $objects) {
            $type = $o.PSObject.TypeNames[0]
            $FirstLabel.ContainsKey($type) | Should -BeTrue -Because "$type needs a view"
            $text = $o | Format-Table | Out-String -Width 250
            $text | Should -Match ([regex]::Escape($FirstLabel[$type])) -Because "the $type view shows its columns"
            $seen[$type] = $true
        }
        foreach ($type in $FirstLabel.Keys) { $seen.Contains($type) | Should -BeTrue -Because "the view for $type was exercised" }
        # In an 80-column console every column of every view is there, with its header whole.
        foreach ($o in $objects) {
            $type = $o.PSObject.TypeNames[0]
            $lines = @(($o | Format-Table | Out-String -Width 80) -split "`r?`n" | Where-Object { $_.Trim() })
            foreach ($line in $lines) { $line.TrimEnd().Length | Should -BeLessOrEqual 80 -Because "$type rows fit 80 columns: '$line'" }
            $view = $formats.Configuration.ViewDefinitions.View | Where-Object { $_.ViewSelectedBy.TypeName -eq $type }
            foreach ($label in @($view.TableControl.TableHeaders.TableColumnHeader.Label)) {
                $lines[0] | Should -Match ([regex]::Escape($label)) -Because "$type keeps its '$label' column at 80 columns"
            }
        }
    }
}

Describe '-WhatIf writes nothing' {
    It 'Export-LoraChart and Remove-LoraAdapter' {
        $png = Join-Path $Dir 'bars.png'
        [pscustomobject]@{ Name = 'a'; Value = 1 } | Export-LoraChart -Path $png -WhatIf
        $png | Should -Not -Exist
        $m = Import-LoraModel $StoriesPath | Add-LoraAdapter -Name keep -Rank 2
        $m | Remove-LoraAdapter -Name keep -WhatIf | Out-Null
        ($m | Get-LoraAdapter).Name | Should -Be 'keep'
    }
    It 'Export-LoraChart names an unsupported file type' {
        $e = Get-ThrownError { [pscustomobject]@{ Name = 'a'; Value = 1 } | Export-LoraChart -Path (Join-Path $Dir 'chart.svg') }
        $e.FullyQualifiedErrorId | Should -BeLike 'UnsupportedChartFormat,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
    }
}
