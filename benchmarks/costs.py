"""Measure what each analysis costs at its declared defaults, for the dashboard's time estimates.

    RESLENS_DATA=../shared/data/cifar10 python benchmarks/costs.py [--models resnet20,resnet56] [--only a,b]

Each per-model analysis runs at its defaults on the test sample of the default size (500 images, seed 0) for each
model, in a fresh context (nothing shared between analyses, the data already decoded, the models loaded). Its time
t on nets of b₁ and b₂ blocks gives the law t = c·b^e (e from the two, c at the first) that
``analysis/engine/costs.json`` keeps, with this machine's forward time per image and block (what
:mod:`analysis.engine.costs` scales by on another device) and the device's name. A busy machine measures slower:
run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from analysis.core.zoo import load_pretrained  # noqa: E402
from analysis.engine import costs  # noqa: E402
from analysis.engine.context import Context  # noqa: E402
from analysis.engine.registry import load_all, run_one  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet20,resnet56")
    ap.add_argument("--only", default="")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    names = [n for n in a.models.split(",") if n]
    only = {n for n in a.only.split(",") if n}
    models = {n: load_pretrained(n, device=a.device) for n in names}
    old = json.loads(costs.COSTS.read_text()) if costs.COSTS.is_file() else {}
    per_block = dict(old.get("analyses", {})) if only else {}
    fwd = costs.forward_seconds(a.device)
    for an in load_all().values():
        if an.scope != "model" or (only and an.name not in only):
            continue
        runs = []
        for n, m in models.items():
            if not an.applies_to(m):
                continue
            ctx = Context(name=n, model=m, arch=n, device=torch.device(a.device), seed=0, params=an.params())
            ctx.sample()  # the images are decoded and drawn before the clock starts
            t = time.perf_counter()
            run_one(an, ctx)
            secs = time.perf_counter() - t
            runs.append((m.num_blocks, secs))
            print(f"{an.name:<18} {n:<10} {secs:8.2f} s  ({secs / m.num_blocks:.3f} s per block)", flush=True)
        if runs:
            (b1, t1), (b2, t2) = runs[0], runs[-1]
            e = math.log(t2 / t1) / math.log(b2 / b1) if b2 != b1 and t1 > 0 and t2 > 0 else 1.0
            e = min(2.5, max(0.5, e))  # two noisy points: keep the law sane
            per_block[an.name] = {"c": round(t1 / b1 ** e, 6), "e": round(e, 3)}
    cpu = platform.processor() or platform.machine()
    out = {"device": torch.cuda.get_device_name(0) if a.device == "cuda" else f"CPU ({cpu}, "
           f"{torch.get_num_threads()} threads)", "forward_s_per_image_block": fwd, "models": names,
           "samples": 500, "analyses": per_block,
           "command": "python benchmarks/costs.py" + (f" --models {a.models}" if a.models != "resnet20,resnet56" else "")}
    costs.COSTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {costs.COSTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
