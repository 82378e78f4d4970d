#!/usr/bin/env bash
# README "Set up and run the demo": builds the module as the package users install (module/package.sh:
# no libtorch; installs pwsh 7.6.9 if needed), publishes it to a local PSResourceGet repository and saves
# it from there with Save-PSResource into out/demo/modules, then runs samples/demo.ps1 on that copy. Its
# first model command fetches libtorch 2.10 (CPU) from your NuGet sources into the per-user cache
# (~/.cache/LoraShell/libtorch), once, as an installed module does; the tests take the same path.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$PATH:$HOME/.dotnet/tools"
bash "$repo/module/package.sh" "$repo/out/psrepo"
modules="$repo/out/demo/modules"
rm -rf "$modules" && mkdir -p "$modules"
pwsh -NoProfile -NonInteractive -Command "
  \$ErrorActionPreference = 'Stop'
  \$name = 'LoraShellDemo-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
  Register-PSResourceRepository -Name \$name -Uri '$repo/out/psrepo' -Trusted
  try { Save-PSResource LoraShell -Repository \$name -Path '$modules' -TrustRepository -Quiet }
  finally { Unregister-PSResourceRepository -Name \$name }"
manifest="$(ls "$modules"/LoraShell/*/LoraShell.psd1 | head -1)"
echo "Installed with Save-PSResource: $manifest"
pwsh -NoProfile -File "$repo/samples/demo.ps1" -Module "$manifest" "$@"
