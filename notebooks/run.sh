#!/usr/bin/env bash
# Executes every notebook headless under Jupyter with the .NET Interactive kernel its metadata names (C#, or
# PowerShell for 00-quickstart), one at a time, so every failure is reported; any cell error fails the run.
# Executed copies go to out/notebooks/executed/.
#   bash notebooks/run.sh            # check (CI and the README test command)
#   bash notebooks/run.sh --refresh  # also replace the committed notebooks with the executed ones
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.dotnet/tools"
refresh=0; [ "${1:-}" = "--refresh" ] && refresh=1
dotnet publish src/LoraShell.Charts -c Release --self-contained false -o out/notebook-lib -v quiet -nologo >/dev/null || { echo "notebooks: library publish failed"; exit 1; }
# The PowerShell notebook imports the module as module/build.sh publishes it (tests/run.sh has built it already).
[ -f module/LoraShell/bin/LoraShell.dll ] || bash module/build.sh >/dev/null || { echo "notebooks: module build failed"; exit 1; }
mkdir -p out/notebooks/executed
failed=0
# Freshness: the committed notebooks record (in notebooks/ran-against.txt) a hash of the library sources and of
# their own code cells as they were when --refresh executed them. Any change to either without a refresh
# means the committed outputs may no longer be what the code produces, and the check fails.
fingerprint() {
    # Tracked and new (not ignored) files alike, so a refresh before the first commit of a new file still counts it.
    { git ls-files --cached --others --exclude-standard -- src module/LoraShell/LoraShell.format.ps1xml | LC_ALL=C sort -u | xargs sha256sum
      for nb in notebooks/*.ipynb; do
          python3 -c 'import json, sys; print(sys.argv[1], json.dumps([c["source"] for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"] == "code"]))' "$nb"
      done; } | sha256sum | cut -d' ' -f1
}
recorded=notebooks/ran-against.txt
if [ $refresh = 0 ]; then
    if [ "$(cat "$recorded" 2>/dev/null)" = "$(fingerprint)" ]; then
        echo "notebook ok: the committed outputs were produced by the current library and cells"
    else
        echo "notebook FAILED: the committed notebooks' outputs are older than the library or their cells (run: bash notebooks/run.sh --refresh, then commit)"
        failed=$((failed + 1))
    fi
fi
kernel() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metadata"]["kernelspec"]["name"])' "$1"; }
run() { # notebook, output
    jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name="$(kernel "$1")" \
        --output "$2" "$1" >"$2.log" 2>&1
}
for nb in notebooks/*.ipynb; do
    name=$(basename "$nb" .ipynb)
    rm -rf "out/notebooks/$name" # each notebook's scratch folder: start as a fresh checkout would
    start=$(date +%s)
    # Clean outputs: no kernel bootstrap script or empty outputs, and no path of this machine (repository or data).
    if run "$nb" "$PWD/out/notebooks/executed/$name.ipynb" &&
        python3 notebooks/clean-outputs.py "$PWD/out/notebooks/executed/$name.ipynb" "$PWD" "$(cd ../shared 2>/dev/null && pwd)"; then
        echo "notebook ok: $name ($(( $(date +%s) - start )) s)"
        [ $refresh = 1 ] && cp "out/notebooks/executed/$name.ipynb" "$nb"
    else
        echo "notebook FAILED: $name (log: out/notebooks/executed/$name.ipynb.log)"; tail -n 20 "out/notebooks/executed/$name.ipynb.log"; failed=$((failed + 1))
    fi
done
# The runner must catch a broken cell in either kernel: a copy of each kind of notebook with a throwing cell has to fail.
for language in C# PowerShell; do
    broken=out/notebooks/broken-${language//#/sharp}.ipynb
    python3 - "$language" "$broken" notebooks/*.ipynb <<'PY' || continue
import json, sys
language, target, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
fine, throw = {"C#": ('System.Console.WriteLine("fine");', 'throw new System.Exception("deliberately broken cell");'),
               "PowerShell": ("'fine'", "throw 'deliberately broken cell'")}[language]
nb = next((n for n in (json.load(open(p)) for p in paths) if n["metadata"]["kernelspec"]["language"] == language), None)
if nb is None: sys.exit(1)
cell = lambda source: {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [source]}
nb["cells"] = [cell(fine), cell(throw)]
json.dump(nb, open(target, "w"))
PY
    executed="$PWD/out/notebooks/executed/$(basename "$broken")"
    # It must fail, and for the deliberate reason (not, say, a kernel that did not start).
    if run "$broken" "$executed" || ! grep -q "deliberately broken cell" "$executed.log"; then
        echo "notebook FAILED: a deliberately broken $language cell did not fail the run as it should"; failed=$((failed + 1))
    else
        echo "notebook ok: a deliberately broken $language cell fails the run"
    fi
done
[ $refresh = 1 ] && [ $failed = 0 ] && fingerprint > "$recorded"
exit $failed
