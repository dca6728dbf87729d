"""Peak memory of the depth readouts as the number of test images grows: streamed against kept.

    RESLENS_DATA=../shared/data/cifar10 python benchmarks/depth_memory.py [--model resnet56] [--sizes 1000,10000]

Each figure comes from a fresh process (peak resident memory, ``ru_maxrss``), measured above the process's own
peak after loading the model and the test images (which every mode needs):

* ``streamed``: what ResLens runs, the readout, input-recovery and CKA analyses at their declared defaults (2,000
  training images for the fitted maps): the test images pass through the net one chunk at a time, and what is kept
  per test image is one number per point;
* ``kept``: the obvious way, for reference: every test image's pooled features at every point and every block's
  input (the deletion analyses' prefix cache), held at once, as a first version of the readouts did.

A streamed run's extra memory should barely move from 1,000 to 10,000 images; the kept one grows with them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(model: str, n: int, mode: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import time

    from analysis.core import data as D
    from analysis.core.zoo import load_pretrained
    from analysis.engine.context import Context
    from analysis.engine.registry import get, run_one

    m = load_pretrained(model, device="cpu")
    test = D.load_split("test", None)
    idx = D.sample_indices(len(test), n, 0)
    from analysis.core.common import Batch

    b = Batch(D.normalize(test.images[idx]), test.labels[idx], idx, "test split")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    if mode == "streamed":
        ctx = Context(name=model, model=m, arch=model, seed=0, samples=n, batch=None, params={})
        ctx.sample = lambda k=None: b  # the images loaded above
        for a in ("readout", "recovery", "cka"):
            an = get(a)
            ctx.params = an.params()
            run_one(an, ctx)
    else:
        from analysis.analyses._features import extract
        from analysis.analyses.deletion import PrefixCache

        feats = extract(m, b.x, b.y)
        cache = PrefixCache(m, b)
        assert len(feats.points) == m.num_blocks + 1 and cache.intact_error_pct() >= 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "images": n, "mode": mode, "extra_mb": peak - base, "seconds": time.perf_counter() - t}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.child[2])))
        return 0
    rows = []
    for n in [int(s) for s in a.sizes.split(",")]:
        for mode in ("streamed", "kept"):
            out = subprocess.run([sys.executable, __file__, "--child", a.model, str(n), mode], capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            r = rows[-1]
            print(f"{r['model']}  {r['images']:>6,} test images  {r['mode']:<8}  +{r['extra_mb']:8.0f} MB peak  "
                  f"({r['seconds']:.0f} s)", flush=True)
    by = {(r["images"], r["mode"]): r["extra_mb"] for r in rows}
    sizes = sorted({r["images"] for r in rows})
    lo, hi = sizes[0], sizes[-1]
    print(f"growth from {lo:,} to {hi:,} images: streamed {by[(hi, 'streamed')] - by[(lo, 'streamed')]:+.0f} MB, "
          f"kept {by[(hi, 'kept')] - by[(lo, 'kept')]:+.0f} MB; at {hi:,}: kept / streamed = "
          f"{by[(hi, 'kept')] / max(1.0, by[(hi, 'streamed')]):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
