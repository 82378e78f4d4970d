#!/usr/bin/env bash
# Builds the module as a PowerShell Gallery / PSResourceGet package without libtorch, into
# out/package/LoraShell: the managed assemblies and TorchSharp's LibTorchSharp shim for each platform
# TorchSharp ships (linux-x64 patched for Debian 12, win-x64, osx-arm64), well under 50 MB. libtorch itself
# is fetched per user on first use (Install-LoraBackend). With a repository folder, the package is also
# published there with Publish-PSResource, ready for Install-PSResource.
# Usage: bash module/package.sh [--no-build] [REPOSITORY_FOLDER]   (--no-build: package module/LoraShell as built)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$PATH:$HOME/.dotnet/tools"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [ "${1:-}" = "--no-build" ]; then shift; else bash "$repo/module/build.sh" Release >/dev/null; fi
out="$repo/out/package/LoraShell"
rm -rf "$out" && mkdir -p "$out"
cp -r "$repo/module/LoraShell/." "$out/"
# libtorch comes per user (Install-LoraBackend); TorchSharp's shim stays, one per platform.
rm -f "$out"/bin/libtorch*.so "$out"/bin/libc10.so "$out"/bin/libgomp-*.so* "$out"/bin/*.pdb
packages="$(dotnet nuget locals global-packages --list | sed 's/^global-packages: //')"
torchsharp="$packages/torchsharp/$(sed -n 's:.*<TorchSharpVersion>\(.*\)</TorchSharpVersion>.*:\1:p' "$repo/Directory.Build.props")"
cp "$torchsharp/runtimes/win-x64/native/LibTorchSharp.dll" "$out/bin/"
cp "$torchsharp/runtimes/osx-arm64/native/libLibTorchSharp.dylib" "$out/bin/"
echo "Package folder: $out ($(du -sh "$out" | cut -f1))"

if [ $# -ge 1 ]; then
  mkdir -p "$1"
  target="$(cd "$1" && pwd)"
  # A repository refuses a version it already holds: this build replaces the one made before it.
  version="$(sed -n "s/^ *ModuleVersion *= *'\(.*\)'.*/\1/p" "$out/LoraShell.psd1")"
  rm -f "$target/LoraShell.$version.nupkg"
  pwsh -NoProfile -NonInteractive -Command "
    \$ErrorActionPreference = 'Stop'
    \$name = 'LoraShellPackage-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    Register-PSResourceRepository -Name \$name -Uri '$target' -Trusted
    try { Publish-PSResource -Path '$out' -Repository \$name -SkipDependenciesCheck }
    finally { Unregister-PSResourceRepository -Name \$name }
    Get-ChildItem '$target' -Filter *.nupkg | ForEach-Object { 'Published: {0} ({1:N1} MB)' -f \$_.FullName, (\$_.Length / 1MB) }"
fi
