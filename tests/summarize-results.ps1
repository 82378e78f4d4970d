#requires -Version 7.4
# Prints the test run's closing line, "N passed, N failed, N skipped", from the xunit TRX files and
# the Pester NUnit file in -Results, plus one result for the benchmark harness check and one per sample run.
param([Parameter(Mandatory)] [string] $Results, [Parameter(Mandatory)] [int] $BenchOk, [int] $ExtraPassed, [int] $ExtraFailed)
$passed = 0; $failed = 0; $skipped = 0
$trxFiles = @(Get-ChildItem $Results -Filter *.trx -Recurse)
if ($trxFiles.Count -eq 0) { $failed += 1 }
foreach ($trx in $trxFiles) {
    $c = ([xml](Get-Content -Raw $trx.FullName)).TestRun.ResultSummary.Counters
    $passed += [int]$c.passed; $failed += [int]$c.failed + [int]$c.error; $skipped += [int]$c.total - [int]$c.executed
}
$nunit = Join-Path $Results 'pester.xml'
if (Test-Path $nunit) {
    $t = ([xml](Get-Content -Raw $nunit)).'test-results'
    $failed += [int]$t.failures + [int]$t.errors
    $skipped += [int]$t.'not-run'
    $passed += [int]$t.total - [int]$t.failures - [int]$t.errors - [int]$t.'not-run'
} else { $failed += 1 }
if ($BenchOk) { $passed += 1 } else { $failed += 1 }
$passed += $ExtraPassed; $failed += $ExtraFailed
'{0} passed, {1} failed, {2} skipped' -f $passed, $failed, $skipped
