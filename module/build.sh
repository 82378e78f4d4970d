#!/usr/bin/env bash
# Builds and publishes the LoraShell module into module/LoraShell (binaries under bin/, help under
# en-US/). Installs PowerShell 7.6.9 as a .NET global tool if pwsh is missing.
# Usage: bash module/build.sh [Release|Debug]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="${1:-Release}"
export PATH="$PATH:$HOME/.dotnet/tools"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! command -v pwsh >/dev/null 2>&1; then
  echo "Installing PowerShell 7.6.9 (dotnet global tool)..."
  dotnet tool install --global PowerShell --version 7.6.9 >/dev/null
fi

echo "Publishing the module ($config)..."
dotnet publish "$repo/src/LoraShell.PowerShell/LoraShell.PowerShell.csproj" -c "$config" -r linux-x64 --self-contained false \
  -o "$repo/module/LoraShell/bin" -nologo -v quiet

echo "Generating help..."
pwsh -NoProfile -NonInteractive -File "$repo/module/build-help.ps1"
size=$(du -shL "$repo/module/LoraShell" | cut -f1)
echo "Module ready: $repo/module/LoraShell ($size). Import-Module $repo/module/LoraShell"
