"""Loss landscape slices along filter-normalised random directions (Li et al. 2018), or along the top
eigenvector of the Hessian (the direction of sharpest curvature).

A direction d has the shape of the parameters. Each filter of d (an output channel of a conv weight, a
row of the linear weight) is drawn from N(0, 1) and rescaled to the norm of the same filter in the
trained weights; 1-D parameters (BN scales and shifts, the linear bias) get d = 0, as in the paper's
filter normalisation with BN entries zeroed. The loss at (alpha, beta) is the mean cross-entropy of
the model with weights theta + alpha*d1 + beta*d2 on the sample, evaluated with
``torch.func.functional_call``: the model itself is never changed. Eval-mode BN (running statistics),
bfloat16 autocast with channels_last (the benchmark compares it with float32).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call

from .common import Batch, Progress, autocast, chunked, count_wrong, error_pct, model_device
from .models import CifarResNet
from .registry import Analysis, Context, Table, register


def filter_normalized_direction(model: CifarResNet, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            d[name] = torch.zeros_like(p)
            continue
        r = torch.randn(p.shape, generator=g).to(p.device, p.dtype)
        dims = tuple(range(1, p.dim()))
        r = r * (torch.linalg.vector_norm(p.detach(), dim=dims, keepdim=True)
                 / torch.linalg.vector_norm(r, dim=dims, keepdim=True).clamp_min(1e-12))
        d[name] = r
    return d


@torch.no_grad()
def _loss_err(model, params, buffers, batch: Batch, dev, bf16: bool, chunk: int = 500) -> tuple[float, float]:
    def run(sl: slice) -> tuple[float, int]:
        x = batch.x[sl].to(dev).contiguous(memory_format=torch.channels_last)
        y = batch.y[sl].to(dev)
        with autocast(dev, bf16):
            out = functional_call(model, (params, buffers), (x,))
        out = out if out.dtype == torch.float64 else out.float()  # bf16 logits are scored in float32
        return F.cross_entropy(out, y, reduction="sum").item(), count_wrong(out, y)

    parts = chunked(run, len(batch), chunk)  # halves the chunk on CUDA out-of-memory
    return sum(p[0] for p in parts) / len(batch), error_pct(sum(p[1] for p in parts), len(batch))


def hessian_direction(model: CifarResNet, batch: Batch, seed: int = 0, max_iter: int = 20,
                      progress: Progress = None) -> tuple[dict[str, torch.Tensor], float]:
    """The top Hessian eigenvector of the loss on ``batch``, rescaled as a whole to the norm of the weights
    (so that alpha = 1 moves as far as a filter-normalised direction does); its direction is exact, not
    filter-normalised. Returns (direction, eigenvalue)."""
    from .hessian import top_eigenvector_direction

    v, lam = top_eigenvector_direction(model, batch, max_iter=max_iter, seed=seed, progress=progress)
    theta_norm = torch.sqrt(sum((p.detach().float() ** 2).sum() for p in model.parameters()))
    v_norm = torch.sqrt(sum((t ** 2).sum() for t in v.values()))
    return {k: t * (theta_norm / v_norm.clamp_min(1e-12)) for k, t in v.items()}, lam


def landscape(model: CifarResNet, batch: Batch, model_name: str, alphas: Sequence[float],
              betas: Sequence[float] | None = None, seed: int = 0, bf16: bool = True,
              direction: dict[str, torch.Tensor] | None = None, direction_name: str = "random",
              progress: Progress = None) -> pd.DataFrame:
    """Loss and error on a 1-D (``betas`` None) or 2-D grid of (alpha, beta). ``direction`` replaces the
    first filter-normalised random direction (e.g. :func:`hessian_direction`)."""
    dev = model_device(model)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    d1 = direction if direction is not None else filter_normalized_direction(model, seed)
    d2 = filter_normalized_direction(model, seed + 1) if betas is not None else None
    grid = [(float(a), 0.0) for a in alphas] if betas is None else [(float(a), float(b)) for b in betas for a in alphas]
    rows = []
    for j, (a, b) in enumerate(grid):
        params = {k: theta[k] + a * d1[k] + (b * d2[k] if d2 is not None else 0) for k in theta}
        loss, err = _loss_err(model, params, buffers, batch=batch, dev=dev, bf16=bf16)
        rows.append({"model": model_name, "residual": model.residual, "dims": 1 if betas is None else 2,
                     "alpha": a, "beta": b, "loss": loss, "error_pct": err, "images": len(batch), "seed": seed,
                     "direction": direction_name})
        if progress:
            progress((j + 1) / len(grid), f"loss landscape of {model_name}")
    return pd.DataFrame(rows)


def grid(steps: int, radius: float = 1.0) -> list[float]:
    return [float(v) for v in np.linspace(-radius, radius, steps)]


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    if p["direction"] not in ("random", "hessian"):
        raise ValueError(f"direction must be 'random' or 'hessian', not {p['direction']!r}")
    b = ctx.sample(p["images"])
    d, extra = None, {}
    if p["direction"] == "hessian":
        d, lam = hessian_direction(ctx.model, ctx.sample(p["hessian_images"]), seed=ctx.seed,
                                   max_iter=p["hessian_iter"], progress=lambda f, msg: ctx.tick(0.5 * f, msg))
        extra = {"top_eigenvalue": lam}
    frames = []
    for j, dims in enumerate(p["dims"]):
        g = grid(p["steps_1d"] if dims == 1 else p["steps_2d"], p["radius"])
        start = 0.5 if d is not None else 0.0
        frames.append(landscape(ctx.model, b, ctx.name, alphas=g, betas=g if dims == 2 else None, seed=ctx.seed, direction=d,
                                direction_name=p["direction"],
                                progress=lambda f, msg, j=j: ctx.tick(start + (1 - start) * (j + f) / len(p["dims"]), msg)))
    out = pd.concat(frames, ignore_index=True)
    for k, v in extra.items():
        out[k] = v
    return {"landscape": out}


register(Analysis(
    name="landscape", title="Loss landscape along filter-normalised directions (Li et al. 2018)", run=_run,
    page="pages/5_Loss_landscape.py", order=50,
    defaults={"images": 256, "dims": (1, 2), "steps_1d": 21, "steps_2d": 7, "radius": 1.0, "direction": "random",
              "hessian_images": 100, "hessian_iter": 20},
    quick={"images": 8, "dims": (1,), "steps_1d": 3, "steps_2d": 2, "direction": "hessian", "hessian_images": 8,
           "hessian_iter": 3},
    tables=(Table("landscape", ("model", "residual", "dims", "alpha", "beta", "loss", "error_pct", "images",
                                "seed", "direction")),)))
