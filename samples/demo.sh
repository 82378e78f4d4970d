#!/usr/bin/env bash
# README "Set up and run the demo": builds the module (installing pwsh 7.6.9 if needed), then runs
# samples/demo.ps1 against the shared stories260K model and Tiny Shakespeare.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$PATH:$HOME/.dotnet/tools"
bash "$repo/module/build.sh"
pwsh -NoProfile -File "$repo/samples/demo.ps1" "$@"
