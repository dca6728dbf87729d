"""Speed and peak memory of analyses under the server's allocator settings (``ui.warm.tune_allocator``).

    RESLENS_DATA=... python benchmarks/allocator.py [--model resnet56] [--rounds 2] [--pages "Block deletion,Depth"]

Each setting runs in a fresh process (glibc's mallopt is per process), its analyses in a thread of their own as
Streamlit runs a page: glibc's default (dynamic mmap and trim thresholds), a fixed 256 KB mmap threshold (what the
server set first), a fixed 32 MB mmap threshold alone (what it set before this round: a fixed mmap threshold also
fixes the trim threshold at glibc's 128 KB, so every freed activation at the heap's top went back to the system and
the next one was faulted in and zeroed again), these with two arenas, and the server's setting now
(``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``, ``ARENA_MAX``); in turns, ``--rounds`` times. Per setting: the seconds of the responses, gradients and
deletion analyses (one-block deletion, k = 2, 4, 6 random blocks deleted, reordering and path gradients; sharing
their cached block inputs, as on the Block deletion page) at their defaults (500 test images; each the faster of
its two runs, the server's ``malloc_trim`` after each), the page faults of those runs and the peak resident memory,
with the ratio to glibc's default. Memory given back after uploads is ``benchmarks/upload_memory.py``'s measurement.

``--pages``: instead, those pages cold (``page_compute.py``'s run: AppTest, caches cleared, the store off, after the
server's start-up; each page cold, then its warm rerun) under each setting, each setting in a fresh process, in
turns: what a visitor waits for. The server now hands free memory back when a page's script ends; the row marked so
hands it back after each analysis instead, as the server did before. With two arenas a script thread may get a
thread arena of its own, whose 64 MB heaps glibc unmaps as each empties: Block deletion after Gradient flow shows it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import ctypes, ctypes.util, json, resource, sys, threading, time
sys.path.insert(0, {root!r})
mmap, trim, arenas = {mmap}, {trim}, {arenas}
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
if mmap:
    assert libc.mallopt(-3, mmap) == 1 and libc.mallopt(-8, arenas) == 1
if trim:
    assert libc.mallopt(-1, trim) == 1
from analysis.core import data as D
from analysis.core.zoo import load_pretrained
from analysis.engine.context import Context, Workspace
from analysis.engine.registry import load_all, run_one
D.load_split("test")
reg, m = load_all(), load_pretrained({model!r}).eval()
out = {{"faults": 0}}
RUNS = (("responses", {{}}), ("gradients", {{}}), ("deletion_single", {{}}),
        ("deletion_random", {{"ks": (2, 4, 6)}}), ("reorder", {{}}), ("paths", {{}}))


def work():
    for _ in range(2):
        shared = Workspace()  # the deletion analyses share their cached block inputs, as on the page
        for name, params in RUNS:
            ctx = Context(name={model!r}, model=m, arch={model!r}, samples=500, params=reg[name].params(**params),
                          shared=shared if name.startswith(("deletion", "reorder")) else Workspace())
            f, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            run_one(reg[name], ctx)
            out[name] = min(out.get(name, float("inf")), time.perf_counter() - t)
            out["faults"] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f
            libc.malloc_trim(0)  # what the server does after each result (ui.warm.release_memory)


th = threading.Thread(target=work)
th.start()
th.join()
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


PAGE_CHILD = r"""
import ctypes, ctypes.util, json, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/benchmarks")
mmap, trim, arenas, each = {mmap}, {trim}, {arenas}, {each}
import ui.warm


def setting():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if mmap:
        assert libc.mallopt(-3, mmap) == 1 and libc.mallopt(-8, arenas) == 1
    if trim:
        assert libc.mallopt(-1, trim) == 1
    return True


ui.warm.tune_allocator = setting  # the server's start-up with this setting instead of its own
ui.warm.warm_up()
import ui.cache
if each:  # memory handed back after each analysis, as the server did before
    def run_one(a, ctx, _run=ui.cache.run_one):
        try:
            return _run(a, ctx)
        finally:
            ui.warm.release_memory()
    ui.cache.run_one = run_one
from page_compute import open_cold, timed_run
from ui.nav import PAGES
out = {{}}
for spec in PAGES:
    if spec.title in {pages!r}:
        at = open_cold(spec)
        out[spec.title] = timed_run(at)
        timed_run(at)  # the warm rerun, as page_compute.py makes it
        ui.cache.prefetcher().drain()
print(json.dumps(out))
"""


def pages(settings: dict, titles: list[str], rounds: int) -> None:
    got: dict[str, list[dict]] = {k: [] for k in settings}
    for _ in range(rounds):
        for label, (mmap, trim, arenas, each) in settings.items():
            code = PAGE_CHILD.format(root=str(ROOT), mmap=mmap, trim=trim, arenas=arenas, each=each, pages=titles)
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            got[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"pages cold (AppTest, 500 test images, the four default models), seconds, each setting's {rounds} runs "
          "in turns")
    print(f"{'allocator':<72}" + "".join(f"{t:>20}" for t in titles))
    for label, runs in got.items():
        print(f"{label:<72}" + "".join(f"{', '.join(f'{r[t]:.1f}' for r in runs):>20}" for t in titles))


def main() -> None:
    from ui.warm import ARENA_MAX, MMAP_THRESHOLD, TRIM_THRESHOLD

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet56")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pages", default="", help="page titles, comma-separated: time these pages cold instead")
    a = p.parse_args()
    mb = 2 ** 20
    settings = {"glibc default": (0, 0, 2), "mmap 256 KB": (256 * 1024, 0, 2),
                f"mmap {MMAP_THRESHOLD // mb} MB": (MMAP_THRESHOLD, 0, 2),
                f"mmap {MMAP_THRESHOLD // mb} MB, trim {TRIM_THRESHOLD // mb} MB, {ARENA_MAX} arena (now)":
                (MMAP_THRESHOLD, TRIM_THRESHOLD, ARENA_MAX)}
    got: dict[str, list[dict]] = {k: [] for k in settings}
    if a.pages:
        t32, t128 = f"mmap {MMAP_THRESHOLD // mb} MB", f"trim {TRIM_THRESHOLD // mb} MB"
        settings = {"glibc default": (0, 0, 2, False),
                    f"{t32}, 2 arenas, released after each analysis (before)": (MMAP_THRESHOLD, 0, 2, True),
                    f"{t32}, {t128}, 2 arenas, released at the page's end": (MMAP_THRESHOLD, TRIM_THRESHOLD, 2, False),
                    f"{t32}, {t128}, {ARENA_MAX} arena, released at the page's end (now)":
                    (MMAP_THRESHOLD, TRIM_THRESHOLD, ARENA_MAX, False)}
        return pages(settings, [t for t in a.pages.split(",") if t], a.rounds)
    names = ("responses", "gradients", "deletion_single", "deletion_random", "reorder", "paths")
    for _ in range(a.rounds):
        for label, (mmap, trim, arenas) in settings.items():
            code = CHILD.format(root=str(ROOT), mmap=mmap, trim=trim, arenas=arenas, model=a.model)
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            got[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    base = sum(min(r[k] for r in got["glibc default"]) for k in names)
    print(f"{a.model}, 500 test images, in a thread; each analysis the faster of 2 runs per process, best of "
          f"{a.rounds} processes; page faults of the runs (the fewest over the processes)")
    print(f"{'allocator':<28}" + "".join(f"{n.replace('deletion_', 'del_') + ' s':>14}" for n in names)
          + f"{'time / default':>16}{'page faults':>13}{'peak MB':>9}")
    for label, runs in got.items():
        best = [min(x[k] for x in runs) for k in names]
        peak, faults = max(x["peak_mb"] for x in runs), min(x["faults"] for x in runs)
        print(f"{label:<28}" + "".join(f"{v:>14.2f}" for v in best)
              + f"{sum(best) / base:>15.2f}x{faults:>13,}{peak:>9.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
