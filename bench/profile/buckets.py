#!/usr/bin/env python3
"""Sums a `perf report` of a training step into the kinds of work the step does.

Usage: buckets.py perf.data  ->  one line per kind: share of the samples, kind, top symbols.
The kinds follow the questions of issue 27: the GEMMs (MKL's kernel and its packing), the loss's exp,
elementwise kernels (norms, rotary, SwiGLU, residual adds, the LoRA path's scale, AdamW), attention,
reductions, OpenMP waits, page faults (kernel time) and allocation.
"""
import re
import subprocess
import sys

RULES = [
    ("GEMM: MKL kernel", r"sgemm_kernel|xsgemm|sgemv"),
    ("GEMM: packing and edges", r"mkl_blas"),
    ("exp in MKL VML (with its underflow path)", r"vml|vsexp|__tls_get_addr"),
    ("attention (flash kernels)", r"flash_attention"),
    ("softmax / exp (vectorised)", r"Sleef|softmax"),
    ("elementwise (mul, add, div, copy, fill, silu, pow, ...)",
     r"mul_kernel|add_kernel|div_true|direct_copy|fill_kernel|neg_kernel|masked_fill|pow_tensor|silu|rsqrt|sqrt|where|copy_kernel|index|gather|scatter|lerp|addcmul|addcdiv|clamp"),
    ("reductions (sum, mean, max)", r"reduce|cascade_sum|max_values|sum_kernel|norm"),
    ("OpenMP waits and barriers", r"libgomp"),
    ("kernel: page faults, zeroing pages", r"\[k\]"),
    ("malloc / free", r"libc\.so"),
    ("managed .NET code", r"memfd:doublemapper|libcoreclr|System\.|perf-"),
]


def main(path):
    report = subprocess.run(["perf", "report", "-i", path, "--sort", "dso,sym", "--stdio"],
                            capture_output=True, text=True, check=True).stdout
    shares, tops = {}, {}
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(.*)", line)
        if not m:
            continue
        share, where = float(m.group(1)), m.group(2) + " " + m.group(3)
        kind = next((name for name, rx in RULES if re.search(rx, where)), "other")
        shares[kind] = shares.get(kind, 0) + share
        tops.setdefault(kind, []).append(re.sub(r"\s+", " ", m.group(3))[:60])
    for kind, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"{share:6.1f}%  {kind}  [{'; '.join(tops[kind][:2])}]")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
