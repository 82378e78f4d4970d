#!/usr/bin/env bash
# Executes every notebook headless under Jupyter with the .NET Interactive C# kernel, one at a time, so every
# failure is reported; any cell error fails the run. Executed copies go to out/notebooks/executed/.
#   bash notebooks/run.sh            # check (CI and the README test command)
#   bash notebooks/run.sh --refresh  # also replace the committed notebooks with the executed ones
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.dotnet/tools"
refresh=0; [ "${1:-}" = "--refresh" ] && refresh=1
dotnet publish src/LoraShell.Core -c Release --self-contained false -o out/notebook-lib -v quiet -nologo >/dev/null || { echo "notebooks: library publish failed"; exit 1; }
mkdir -p out/notebooks/executed
failed=0
run() { # notebook, output
    jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name=.net-csharp \
        --output "$2" "$1" >"$2.log" 2>&1
}
for nb in notebooks/*.ipynb; do
    name=$(basename "$nb" .ipynb)
    start=$(date +%s)
    if run "$nb" "$PWD/out/notebooks/executed/$name.ipynb"; then
        echo "notebook ok: $name ($(( $(date +%s) - start )) s)"
        [ $refresh = 1 ] && cp "out/notebooks/executed/$name.ipynb" "$nb"
    else
        echo "notebook FAILED: $name (log: out/notebooks/executed/$name.ipynb.log)"; tail -n 20 "out/notebooks/executed/$name.ipynb.log"; failed=$((failed + 1))
    fi
done
# The runner must catch a broken cell: a copy of the first notebook with a throwing cell has to fail.
python3 - "$(ls notebooks/*.ipynb | head -1)" out/notebooks/broken.ipynb <<'PY'
import json, sys
nb = json.load(open(sys.argv[1]))
nb["cells"] = nb["cells"][:2] + [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["throw new System.Exception(\"deliberately broken cell\");"]}]
json.dump(nb, open(sys.argv[2], "w"))
PY
if run out/notebooks/broken.ipynb "$PWD/out/notebooks/executed/broken.ipynb"; then
    echo "notebook FAILED: a deliberately broken cell did not fail the run"; failed=$((failed + 1))
else
    echo "notebook ok: a deliberately broken cell fails the run"
fi
exit $failed
