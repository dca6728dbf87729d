"""One step of an analysis, the way it was against the way it is, on the same inputs, in turns, in one run.

    RESLENS_DATA=... python benchmarks/analysis_steps.py [paths|intervals|split|cka|all] [--model resnet56] [--repeats 3]

- ``paths`` (Block deletion's gradient by path length, the page's defaults: 4 rounds of 16 test images, every path
  length): each block's branch back-propagated for all the routings through it in one call on their D·N images
  (``Block.branch_vjp``) against autograd's batched gradient (``is_grads_batched``, one conv backward per routing).
  Printed: the largest relative difference of a draw's gradient norm.
- ``intervals`` (Depth's input recovery: an R² interval per readout point, 2,000 bootstrap resamples of the 500 test
  images): every point's resampled sums from one product of the shared resample counts (``r2_intervals``) against
  resampling each point on its own. Printed: the largest difference of an interval's end.
- ``split`` (Gradient flow's identity term, 64 test images): the private copy with each BN folded into its conv
  against the model's own layers. Printed: the largest relative difference of a norm or share.
- ``cka`` (Depth's block x block CKA, 500 test images in minibatches of 250, on the features' folded bfloat16
  copy): each point's kernel from its features centred over the minibatch, multiplied in float32
  (``centred_gram``), against the float64 product of the features as they are (``gram``). Printed: the largest
  difference of a CKA value (unbiased or biased).

Each prints both ways' times per repeat, the best of each and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis.analyses._prefix import inference_copy  # noqa: E402
from analysis.analyses.cka import cka_matrix, gram  # noqa: E402
from analysis.analyses.deletion import _routed_backward, path_draws  # noqa: E402
from analysis.analyses.gradients import gradient_split  # noqa: E402
from analysis.analyses.recovery import r2_intervals  # noqa: E402
from analysis.core.common import eval_sample  # noqa: E402
from analysis.core.stats import resample_indices  # noqa: E402
from analysis.core.zoo import load_pretrained  # noqa: E402


def in_turns(title: str, ways: dict[str, Callable[[], object]], repeats: int, diff: Callable[[list], float],
             what: str) -> None:
    """Run each way ``repeats`` times in turns; print the times, the best of each, the ratio and ``diff`` of the
    results (the first way is the old one)."""
    times: dict[str, list[float]] = {k: [] for k in ways}
    out: dict[str, object] = {}
    for _ in range(repeats):
        for k, fn in ways.items():
            t = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t)
    print(title)
    for k, v in times.items():
        print(f"  {k}: {', '.join(f'{t:.3f}' for t in v)} s (best {min(v):.3f})")
    old, new = (min(v) for v in times.values())
    print(f"  speed-up {old / new:.2f}x; {what}: {diff(list(out.values())):.1e}")


def paths(model_name: str, repeats: int) -> None:
    model = load_pretrained(model_name)
    b = eval_sample(500, 0, torch.device("cpu"))
    n = model.num_blocks
    rounds = path_draws(n, len(b), range(n + 1), 4, 16, 0)

    def run(written: bool) -> torch.Tensor:
        return torch.cat([_routed_backward(model, b.x[idx], b.y[idx], torch.tensor(
            [[i in blocks for i in range(n)] for _, blocks in draws]), written=written) for idx, draws in rounds])

    in_turns(f"paths, {model_name}: 4 rounds of 16 images, {n + 1} path lengths, float32",
             {"autograd's batched gradient": lambda: run(False), "branch_vjp, one call a block": lambda: run(True)},
             repeats, lambda r: ((r[1] - r[0]).abs() / r[0].abs().clamp_min(1e-30)).max().item(),
             "largest relative difference of a draw's gradient norm")


def intervals(repeats: int, points: int = 28, images: int = 500, resamples: int = 2000) -> None:
    rng = np.random.default_rng(0)
    sst = rng.gamma(2.0, size=images) + 0.1
    sse = [sst * rng.uniform(0.05, 0.95, size=images) for _ in range(points)]  # resnet56 has 28 readout points

    def each() -> list[tuple[float, float, float]]:
        out = []
        for e in sse:
            idx = resample_indices(images, resamples, 0)
            boot = 1.0 - e[idx].sum(1) / sst[idx].sum(1)
            out.append((1.0 - e.sum() / sst.sum(), np.quantile(boot, 0.025), np.quantile(boot, 0.975)))
        return out

    in_turns(f"intervals: {points} points, {images} images, {resamples} resamples",
             {"each point resampled on its own": each, "r2_intervals, shared counts": lambda: r2_intervals(sse, sst)},
             repeats, lambda r: float(np.abs(np.array(r[0]) - np.array(r[1])).max()),
             "largest difference of an R² or an interval's end")


def split(model_name: str, repeats: int) -> None:
    model = load_pretrained(model_name)
    b = eval_sample(64, 0, torch.device("cpu"))
    cols = ["shortcut_grad_l2", "branch_grad_l2", "total_grad_l2", "shortcut_share"]

    def rel(r: list) -> float:
        a, c = (d[cols].to_numpy() for d in r)
        return float((np.abs(a - c) / np.maximum(np.abs(a), 1e-12)).max())

    in_turns(f"split, {model_name}: 64 images, float32",
             {"the model's own layers": lambda: gradient_split(model, b, model_name, fold=False),
              "BN folded into the convs": lambda: gradient_split(model, b, model_name)},
             repeats, rel, "largest relative difference of a norm or share")


def cka(model_name: str, repeats: int) -> None:
    model = inference_copy(load_pretrained(model_name))
    x = eval_sample(500, 0, torch.device("cpu")).x

    def diff(r: list) -> float:
        return max(float((a - c).abs().max()) for a, c in zip(r[0][1:], r[1][1:]))

    in_turns(f"cka, {model_name}: 500 images, minibatches of 250",
             {"float64 kernels of the features": lambda: cka_matrix(model, x, kernel=lambda h: gram(h.float())),
              "float32 kernels of the centred features": lambda: cka_matrix(model, x)},
             repeats, diff, "largest difference of a CKA value")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("step", nargs="?", default="all", choices=("paths", "intervals", "split", "cka", "all"))
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.step in ("paths", "all"):
        paths(a.model, a.repeats)
    if a.step in ("intervals", "all"):
        intervals(a.repeats)
    if a.step in ("split", "all"):
        split(a.model, a.repeats)
    if a.step in ("cka", "all"):
        cka(a.model, a.repeats)
