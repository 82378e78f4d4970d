#!/usr/bin/env python3
"""Tidies an executed notebook's outputs for committing, and refuses outputs that would not travel.

Removed: .NET Interactive's JavaScript bootstrap (a <script> that probes the kernel's HTTP ports, which
Jupyter's first cell output receives; a saved notebook has no kernel to find), the kernel's CS1701
assembly-binding warning, and outputs with nothing left in them. Refused (exit 1): outputs holding this
machine's absolute paths (the repository's or the data folder's), since a reader's checkout lives elsewhere.
Usage: clean-outputs.py NOTEBOOK [ABSOLUTE_PATH ...]
"""
import json
import re
import sys


def text_of(output):
    if "text" in output:
        t = output["text"]
    else:
        t = "".join("".join(v) if isinstance(v, list) else str(v) for v in output.get("data", {}).values())
    return "".join(t) if isinstance(t, list) else t


# The C# kernel's own assembly binding (Microsoft.DotNet.Interactive was built against
# Microsoft.AspNetCore.Html.Abstractions 2.3 and runs with 10.0) makes every cell that displays HTML
# print this warning; #pragma cannot reach it, and it says nothing about the notebook.
KERNEL_WARNING = re.compile(r"^warning CS1701: Assuming assembly reference 'Microsoft\.AspNetCore\.Html\.Abstractions, .*$", re.M)


def keep(output):
    if output.get("output_type") == "error":
        return True
    if output.get("output_type") == "stream":
        output["text"] = KERNEL_WARNING.sub("", text_of(output))
    text = text_of(output)
    if "probeAddresses" in text and "dotnet-interactive-this-cell" in text:
        return False
    return text.strip() != ""


path, forbidden = sys.argv[1], [p.rstrip("/") for p in sys.argv[2:] if p.strip("/")]
notebook = json.load(open(path))
leaks = []
for index, cell in enumerate(notebook["cells"]):
    if cell["cell_type"] != "code":
        continue
    cell["outputs"] = [o for o in cell.get("outputs", []) if keep(o)]
    for output in cell["outputs"]:
        leaks += [f"cell {index}: {p}" for p in forbidden if p + "/" in text_of(output) or text_of(output).strip() == p]
with open(path, "w") as f:
    json.dump(notebook, f, indent=1, ensure_ascii=False)
    f.write("\n")
if leaks:
    print("absolute paths of this machine in the outputs:\n  " + "\n  ".join(sorted(set(leaks))))
    sys.exit(1)
