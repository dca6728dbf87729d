"""How fast a page could be on this machine at its default settings: its arithmetic, counted, at the best rate this
machine reaches for that kind of arithmetic.

    RESLENS_DATA=... python benchmarks/page_floor.py [--pages "Block deletion,Depth"]

For each page of ``ui/nav.py`` (as ``page_compute.py``: Streamlit's AppTest, caches cleared, the on-disk store off,
the four default models, 500 test images), two cold runs:

1. **timed**: the page as it runs (the cold time of ``page_compute.py``);
2. **counted**: the same page with every analysis (``run_one``, in the page's thread and the slider's background
   prefetch) inside a dispatch mode that counts each convolution and matrix product with PyTorch's own FLOP formulas
   (``torch.utils.flop_counter.flop_registry``, via :class:`analysis.analyses.cost.FlopCount`), by dtype and by kind
   (convolution forward, convolution backward, matrix product). The fused convolutions of the inference copy
   (``analysis/core/fused.py``) are off in this run: oneDNN's fused op has no formula in the registry, and the same
   convolutions unfused are counted instead (the same multiply-adds).

Then the best rate of each kind, measured here in the same run: the bfloat16 forward pass of resnet56's fused
inference copy on 500 images (the deletion sweeps' case), resnet56's float32 and bfloat16-autocast forward and input
backward on 256 images (the gradients' case), and a 2,000 x 1,025 Gram matrix (the depth analyses' ridge fits) in each
dtype, each the best of five passes, measured before and after the pages and the faster kept (one rate moved by
up to 2.5x between two measurements minutes apart on this shared machine). The **floor** is Σ counted FLOPs / that rate: what the page's convolutions and matrix products alone take at
the speed of the best case of their kind, with nothing else (no Python, no data loading, no bootstrap, no chart), so a
lower bound on the page's cold time at these settings. Not counted: element-wise work (BN, ReLU, additions, norms),
linear solves and decompositions.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RESLENS_RESULTS", "off")

from analysis.analyses.cost import FlopCount  # noqa: E402
from page_compute import open_cold, timed_run  # noqa: E402  (the same cold run as page_compute.py)
from ui.nav import PAGES  # noqa: E402

KINDS = {"convolution": "conv fwd", "convolution_backward": "conv bwd"}


class KindCount(FlopCount):
    """FlopCount by (dtype, kind): the dtype of the operation's first tensor argument. Entered in one thread, it
    counts that thread's operations only (a dispatch mode is thread-local)."""

    def __init__(self, into: collections.Counter) -> None:
        super().__init__()
        self.into = into

    def add(self, packet, n: int, args: tuple) -> None:
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        dtype = str(first.dtype).replace("torch.", "") if first is not None else "?"
        with LOCK:
            self.into[(dtype, KINDS.get(packet.__name__, "matmul"))] += n


LOCK = threading.Lock()


def cold_page(spec) -> float:
    """The page's cold run (``page_compute.py``'s), in seconds; its background jobs end before this returns."""
    import ui.cache as uc

    t = timed_run(open_cold(spec))
    uc.prefetcher().drain()
    return t


def counted_page(spec) -> tuple[collections.Counter, collections.Counter]:
    """The page cold, its analyses' FLOPs counted (fusion off: the same convolutions, each one counted): (the
    page's own, the background prefetch's: the slider's next steps, computed after the page and not in its time)."""
    import analysis.analyses._prefix as prefix
    import ui.cache as uc

    counts: collections.Counter = collections.Counter()
    background: collections.Counter = collections.Counter()
    real_run, real_fuse = uc.run_one, prefix.fuse_for_inference

    def counting(a, ctx):
        into = background if threading.current_thread().name.startswith("reslens-prefetch") else counts
        with KindCount(into):
            return real_run(a, ctx)

    uc.run_one, prefix.fuse_for_inference = counting, (lambda m: m)
    try:
        cold_page(spec)
    finally:
        uc.run_one, prefix.fuse_for_inference = real_run, real_fuse
    return counts, background


def best(fn, repeats: int = 5) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def rates() -> dict[tuple[str, str], float]:
    """FLOP/s of the best case of each (dtype, kind), measured here."""
    from analysis.analyses._prefix import inference_copy
    from analysis.core.common import autocast, eval_sample, private_copy
    from analysis.core.zoo import load_pretrained

    cpu = torch.device("cpu")
    model = load_pretrained("resnet56", device=cpu).eval()
    out: dict[tuple[str, str], float] = {}

    # bfloat16 forward: the fused inference copy, 500 images in chunks of 250 (the sweeps' case)
    batch = eval_sample(500, 0, cpu)
    fused, plain = inference_copy(model), inference_copy(model, fuse=False)

    def sweep(m):
        with torch.no_grad(), autocast(cpu, True):
            for s in (0, 250):
                x = batch.x[s:s + 250].contiguous(memory_format=torch.channels_last)
                h, _ = m.run_blocks(m.stem_forward(x))
                m.head(h)

    counts: collections.Counter = collections.Counter()
    with KindCount(counts):
        sweep(plain)
    out[("bfloat16", "conv fwd")] = counts[("bfloat16", "conv fwd")] / best(lambda: sweep(fused))

    # forward and input backward on 256 images, float32 and bfloat16 autocast (the gradients' case)
    for dtype, fast, layout in (("float32", False, torch.contiguous_format), ("float32", False, torch.channels_last),
                                ("bfloat16", True, torch.channels_last)):
        m = private_copy(model).to(memory_format=layout)
        x = batch.x[:256].contiguous(memory_format=layout)

        def fwd():
            with autocast(cpu, fast):
                xi = x.clone().requires_grad_(True)
                return m(xi).float().sum(), xi

        def fwd_bwd():
            loss, xi = fwd()
            torch.autograd.grad(loss, xi)

        counts = collections.Counter()
        with KindCount(counts):
            fwd_bwd()
        t_f, t_fb = best(lambda: fwd()), best(fwd_bwd)
        out[(dtype, "conv fwd")] = max(out.get((dtype, "conv fwd"), 0.0), counts[(dtype, "conv fwd")] / t_f)
        out[(dtype, "conv bwd")] = max(out.get((dtype, "conv bwd"), 0.0),
                                       counts[(dtype, "conv bwd")] / max(t_fb - t_f, 1e-9))

    # matrix products: a 2,000 x 1,025 Gram matrix (the ridge fits' largest)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        z = torch.randn(2000, 1025, dtype=dtype)
        out[(str(dtype).replace("torch.", ""), "matmul")] = 2 * 2000 * 1025 * 1025 / best(lambda: z.T @ z)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pages", default="Gradient flow,Block deletion,Identity mappings,Depth",
                   help="page titles, comma-separated ('' for every page)")
    a = p.parse_args()
    wanted = {s for s in a.pages.split(",") if s}
    from ui.warm import warm_up

    warm_up()
    r = rates()  # measured before and after the pages, the best of both kept: this machine's speed drifts
    rows = []
    for spec in PAGES:
        if wanted and not {spec.url_path, spec.title} & wanted:
            continue
        cold = cold_page(spec)
        counts, background = counted_page(spec)
        rows.append((spec.title, cold, counts))
        print(f"{spec.title}: cold {cold:.1f} s, {sum(counts.values()) / 1e9:,.0f} GFLOP counted"
              + (f" (and {sum(background.values()) / 1e9:,.0f} in the background prefetch after it, not in the floor)"
                 if background else ""), flush=True)
    r = {k: max(v, r.get(k, 0.0)) for k, v in rates().items()}
    print("\nbest rates measured here (GFLOP/s): "
          + ", ".join(f"{d} {k} {v / 1e9:,.0f}" for (d, k), v in sorted(r.items())))
    print("\n| page | cold (s) | counted GFLOP (by dtype and kind) | floor (s) | cold / floor |")
    print("| --- | --- | --- | --- | --- |")
    for title, cold, counts in rows:
        missing = [key for key in counts if key not in r]
        floor = sum(n / r[key] for key, n in counts.items() if key in r)
        parts = ", ".join(f"{d} {k} {n / 1e9:,.0f}" for (d, k), n in sorted(counts.items(), key=lambda t: -t[1])
                          if n >= 1e9)
        note = f" (no rate for {', '.join(' '.join(k) for k in missing)})" if missing else ""
        ratio = f"{cold / floor:.1f}x" if floor > 0 else "-"  # a page that computes nothing (Home)
        print(f"| {title} | {cold:.1f} | {parts or 'none'}{note} | {floor:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
