#!/usr/bin/env bash
# LoraShell's test command (README "Two commands"; .ci/run calls exactly this). On a fresh Debian 12
# machine with the .NET 10 SDK it first installs what is missing (tests/setup.sh says what and why),
# then:
#   1. builds and publishes the module (module/build.sh),
#   2. runs the core xunit suite (with the PyTorch reference of the model families),
#   3. runs the module's Pester suite in a fresh pwsh,
#   4. runs every twin of a notebook, samples/*.cs with `dotnet run` and samples/NN-*.ps1 with pwsh
#      (each must finish and write its charts),
#   5. executes every notebook under Jupyter with the .NET Interactive kernels (notebooks/run.sh),
#   6. runs the benchmark harness in quick mode (proves it works; no timing is judged).
# A stage whose prerequisites could not be installed is not run and counts as failed. Prints the time
# of each stage, then one closing line "N passed, N failed, N skipped"; exits non-zero on any failure.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
results="$repo/out/test-results"
rm -rf "$results" && mkdir -p "$results"
status=0
extra_ok=0; extra_failed=0
declare -a timings=()

source tests/setup.sh
stage_clock=$SECONDS
setup_test_prerequisites
timings+=("setup $((SECONDS - stage_clock)) s")

# runnable STAGE: true when its prerequisites are there; otherwise counts it as failed and says why.
runnable() {
  [ -z "${MISSING_FOR[$1]:-}" ] && return 0
  echo "  NOT RUN: $1 needs ${MISSING_FOR[$1]}"
  extra_failed=$((extra_failed + 1)); status=1
  return 1
}
begin() { echo "== $1 =="; stage_clock=$SECONDS; }
end() { timings+=("$1 $((SECONDS - stage_clock)) s"); }

begin "module build"
if runnable build; then
  bash module/build.sh || { echo "module build failed"; exit 1; }
fi
end "module build"

begin "core tests (xunit)"
if runnable core; then
  dotnet test LoraShell.sln -c Debug --filter "Category!=MemoryMeasurement" --logger "trx;LogFileName=core.trx" --results-directory "$results" || status=1
  # Peak-memory measurements run one per process: what other tests (and other measurements) leave
  # resident (freed memory the allocator keeps, libtorch's caches) would move their baselines by tens of MiB.
  for case in Full Lora Full_with_checkpointing Lora_with_checkpointing Lora_on_an_Nf4_base Lora_on_an_Int8_base Lora_with_DoRA Ladder; do
    dotnet test tests/LoraShell.Core.Tests -c Debug --no-build --filter "Category=MemoryMeasurement&FullyQualifiedName=LoraShell.Core.Tests.MemoryEstimatorMeasuredTests.$case" \
      --logger "trx;LogFileName=memory-$case.trx" --results-directory "$results" || status=1
  done
  for case in Full Lora Ladder; do
    dotnet test tests/LoraShell.Core.Tests -c Debug --no-build --filter "Category=MemoryMeasurement&FullyQualifiedName=LoraShell.Core.Tests.T5MemoryMeasuredTests.$case" \
      --logger "trx;LogFileName=memory-t5-$case.trx" --results-directory "$results" || status=1
  done
fi
end "core tests"

begin "module tests (Pester)"
if runnable pester; then
  pwsh -NoProfile -NonInteractive -File tests/run-pester.ps1 || status=1
fi
end "Pester"

begin "samples (dotnet run twins of the notebooks)"
if runnable samples; then
  # C# twins run with `dotnet run`, PowerShell twins (NN-*.ps1; demo.ps1 is the README demo) with pwsh.
  for sample in samples/*.cs samples/[0-9][0-9]-*.ps1; do
    name=$(basename "${sample%.*}")
    case "$sample" in *.ps1) runner=(pwsh -NoProfile -NonInteractive -File);; *) runner=(dotnet run);; esac
    if "${runner[@]}" "$sample" "out/samples/$name" >"$results/sample-$name.log" 2>&1 && ls "out/samples/$name"/*.html >/dev/null 2>&1; then
      extra_ok=$((extra_ok + 1)); echo "  passed: $sample"
    else
      extra_failed=$((extra_failed + 1)); status=1; echo "  FAILED: $sample"; tail -20 "$results/sample-$name.log"
    fi
  done
fi
end "samples"

begin "notebooks (Jupyter, .NET Interactive C# and PowerShell kernels)"
if runnable notebooks; then
  while read -r line; do
    echo "  $line"
    case "$line" in "notebook ok"*) extra_ok=$((extra_ok + 1));; "notebook FAILED"*) extra_failed=$((extra_failed + 1)); status=1;; esac
  done < <(bash notebooks/run.sh 2>&1 | grep -E '^notebook ')
fi
end "notebooks"

begin "benchmark harness (quick mode)"
bench_ok=0
if runnable bench; then
  if pwsh -NoProfile -NonInteractive -File bench/run.ps1 -Quick >"$results/bench-quick.log" 2>&1 \
     && grep -q '| gemm |' out/bench-quick/RESULTS.md; then bench_ok=1; else status=1; cat "$results/bench-quick.log"; fi
fi
end "bench"

echo "== time per stage: ${timings[*]/%/,} total $SECONDS s =="
if ! command -v pwsh >/dev/null 2>&1; then
  echo "0 passed, $((extra_failed + 1)) failed, 0 skipped (pwsh is missing, so results could not be summarised)"; exit 1
fi
# One closing line for the whole run, counted from the result files.
pwsh -NoProfile -NonInteractive -File tests/summarize-results.ps1 -Results "$results" -BenchOk "$bench_ok" \
  -ExtraPassed "$extra_ok" -ExtraFailed "$extra_failed" || status=1
exit $status
