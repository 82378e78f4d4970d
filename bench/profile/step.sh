#!/usr/bin/env bash
# Profiles the timed training steps of one bench scenario (a train-speed-* row) with perf and sums the
# samples by kind of work: bash bench/profile/step.sh train-speed-synthetic50M-lora-b16
# Sampling starts after the first (warm-up) step and stops after the last (bench PerfControl), so loading,
# tokenizing and the warm-up stay out. Needs perf (linux-perf) and perf_event_paranoid <= 2.
set -euo pipefail
scenario=${1:?usage: step.sh <train-speed scenario>}
here=$(cd "$(dirname "$0")" && pwd)
dll="$here/../LoraShell.Bench/bin/Release/net10.0/LoraShell.Bench.dll"
[ -f "$dll" ] || dotnet build "$here/../LoraShell.Bench/LoraShell.Bench.csproj" -c Release -nologo -v quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/ctl"
LORASHELL_PERF_CTL="$work/ctl" perf record -D -1 --control "fifo:$work/ctl" -e cpu-clock -F 499 -o "$work/perf.data" \
  dotnet "$dll" "$scenario" 2>/dev/null | grep '"Scenario"'
python3 "$here/buckets.py" "$work/perf.data"
