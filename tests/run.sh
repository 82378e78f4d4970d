#!/usr/bin/env bash
# LoraShell's test command (README "Run the tests"; .ci/run calls exactly this):
#   1. builds and publishes the module (module/build.sh; installs pwsh 7.6.9 if missing),
#   2. runs the core xunit suite,
#   3. runs the module's Pester suite in a fresh pwsh,
#   4. runs every twin of a notebook, samples/*.cs with `dotnet run` and samples/NN-*.ps1 with pwsh
#      (each must finish and write its charts),
#   5. runs the benchmark harness in quick mode (proves it works; no timing is judged),
#   6. executes every notebook under Jupyter with the .NET Interactive kernel (notebooks/run.sh).
# Prints one closing line "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$PATH:$HOME/.dotnet/tools"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
results="$repo/out/test-results"
rm -rf "$results" && mkdir -p "$results"
status=0

bash module/build.sh || { echo "module build failed"; exit 1; }

echo "== core tests (xunit) =="
dotnet test LoraShell.sln -c Debug --logger "trx;LogFileName=core.trx" --results-directory "$results" || status=1

echo "== module tests (Pester) =="
dotnet restore tests/pester/PesterPackage.csproj -v quiet >/dev/null || { echo "could not restore Pester"; exit 1; }
pwsh -NoProfile -NonInteractive -File tests/run-pester.ps1 || status=1

echo "== samples (dotnet run twins of the notebooks) =="
samples_ok=0; samples_failed=0
# C# twins run with `dotnet run`, PowerShell twins (NN-*.ps1; demo.ps1 is the README demo) with pwsh.
for sample in samples/*.cs samples/[0-9][0-9]-*.ps1; do
  name=$(basename "${sample%.*}")
  case "$sample" in *.ps1) runner=(pwsh -NoProfile -NonInteractive -File);; *) runner=(dotnet run);; esac
  if "${runner[@]}" "$sample" "out/samples/$name" >"$results/sample-$name.log" 2>&1 && ls "out/samples/$name"/*.html >/dev/null 2>&1; then
    samples_ok=$((samples_ok + 1)); echo "  passed: $sample"
  else
    samples_failed=$((samples_failed + 1)); status=1; echo "  FAILED: $sample"; tail -20 "$results/sample-$name.log"
  fi
done

echo "== notebooks (Jupyter, .NET Interactive C# and PowerShell kernels) =="
while read -r line; do
  echo "  $line"
  case "$line" in "notebook ok"*) samples_ok=$((samples_ok + 1));; "notebook FAILED"*) samples_failed=$((samples_failed + 1)); status=1;; esac
done < <(bash notebooks/run.sh 2>&1 | grep -E '^notebook ')

echo "== benchmark harness (quick mode) =="
if pwsh -NoProfile -NonInteractive -File bench/run.ps1 -Quick >"$results/bench-quick.log" 2>&1 \
   && grep -q '| gemm |' out/bench-quick/RESULTS.md; then bench_ok=1; else bench_ok=0; status=1; cat "$results/bench-quick.log"; fi

# One closing line for the whole run, counted from the result files.
pwsh -NoProfile -NonInteractive -File tests/summarize-results.ps1 -Results "$results" -BenchOk "$bench_ok" \
  -ExtraPassed "$samples_ok" -ExtraFailed "$samples_failed" || status=1
exit $status
