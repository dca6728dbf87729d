"""Speed and peak memory of analyses under the server's allocator settings (``ui.warm.tune_allocator``).

    RESLENS_DATA=... python benchmarks/allocator.py [--model resnet56] [--rounds 2]

Each setting runs in a fresh process (glibc's mallopt is per process): glibc's default (a dynamic mmap threshold),
a fixed 256 KB threshold (what the server set before), and the server's setting now (``MMAP_THRESHOLD``), each with
two arenas; in turns, ``--rounds`` times. Per setting: the seconds of the responses and gradients analyses at their
defaults (500 test images; each the faster of its runs) and the peak resident memory, with the ratio to glibc's
default. Memory given back after uploads is ``benchmarks/upload_memory.py``'s measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import ctypes, ctypes.util, json, resource, sys, time
sys.path.insert(0, {root!r})
threshold = {threshold}
if threshold:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    assert libc.mallopt(-3, threshold) == 1 and libc.mallopt(-8, 2) == 1
from analysis.core import data as D
from analysis.core.zoo import load_pretrained
from analysis.engine.context import Context
from analysis.engine.registry import load_all, run_one
D.load_split("test")
reg, m = load_all(), load_pretrained({model!r}).eval()
out = {{}}
for name in ("responses", "gradients"):
    best = float("inf")
    for _ in range(2):
        ctx = Context(name={model!r}, model=m, arch={model!r}, samples=500, params=reg[name].params())
        t = time.perf_counter()
        run_one(reg[name], ctx)
        best = min(best, time.perf_counter() - t)
    out[name] = best
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def main() -> None:
    from ui.warm import MMAP_THRESHOLD

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet56")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    settings = {"glibc default": 0, "fixed 256 KB (before)": 256 * 1024,
                f"fixed {MMAP_THRESHOLD // 2**20} MB (now)": MMAP_THRESHOLD}
    got: dict[str, list[dict]] = {k: [] for k in settings}
    for _ in range(a.rounds):
        for label, threshold in settings.items():
            code = CHILD.format(root=str(ROOT), threshold=threshold, model=a.model)
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            got[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    base = {k: min(r[k] for r in got["glibc default"]) for k in ("responses", "gradients")}
    print(f"{a.model}, 500 test images, each analysis the faster of 2 runs per process, best of {a.rounds} processes")
    print(f"{'allocator':<24}{'responses s':>13}{'gradients s':>13}{'slower than default':>22}{'peak MB':>10}")
    for label, runs in got.items():
        r, g = min(x["responses"] for x in runs), min(x["gradients"] for x in runs)
        peak = max(x["peak_mb"] for x in runs)
        print(f"{label:<24}{r:>13.2f}{g:>13.2f}{(r + g) / (base['responses'] + base['gradients']):>21.2f}x{peak:>10.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
