"""Loss landscape slices along filter-normalised random directions (Li et al. 2018).

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
        return F.cross_entropy(out.float(), y, reduction="sum").item(), count_wrong(out, y)

    parts = chunked(run, len(batch), chunk)  # halves the chunk on CUDA out-of-memory
    return sum(p[0] for p in parts) / len(batch), error_pct(sum(p[1] for p in parts), len(batch))


def landscape(model: CifarResNet, batch: Batch, model_name: str, alphas: Sequence[float],
              betas: Sequence[float] | None = None, seed: int = 0, bf16: bool = True,
              progress: Progress = None) -> pd.DataFrame:
    """Loss and error on a 1-D (``betas`` None) or 2-D grid of (alpha, beta)."""
    dev = model_device(model)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    d1 = filter_normalized_direction(model, seed)
    d2 = filter_normalized_direction(model, seed + 1) if betas is not None else None
    grid = [(float(a), 0.0) for a in alphas] if betas is None else [(float(a), float(b)) for b in betas for a in alphas]
    rows = []
    for j, (a, b) in enumerate(grid):
        params = {k: theta[k] + a * d1[k] + (b * d2[k] if d2 is not None else 0) for k in theta}
        loss, err = _loss_err(model, params, buffers, batch, dev, bf16)
        rows.append({"model": model_name, "residual": model.residual, "dims": 1 if betas is None else 2,
                     "alpha": a, "beta": b, "loss": loss, "error_pct": err, "images": len(batch), "seed": seed})
        if progress:
            progress((j + 1) / len(grid), f"loss landscape of {model_name}")
    return pd.DataFrame(rows)


def grid(steps: int, radius: float = 1.0) -> list[float]:
    return [float(v) for v in np.linspace(-radius, radius, steps)]


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    b = ctx.sample(p["images"])
    frames = []
    for j, dims in enumerate(p["dims"]):
        g = grid(p["steps_1d"] if dims == 1 else p["steps_2d"], p["radius"])
        frames.append(landscape(ctx.model, b, ctx.name, g, g if dims == 2 else None, seed=ctx.seed,
                                progress=lambda f, msg, j=j: ctx.tick((j + f) / len(p["dims"]), msg)))
    return {"landscape": pd.concat(frames, ignore_index=True)}


register(Analysis(
    name="landscape", title="Loss landscape along filter-normalised directions (Li et al. 2018)", run=_run,
    page="pages/5_Loss_landscape.py", order=50,
    defaults={"images": 256, "dims": (1, 2), "steps_1d": 21, "steps_2d": 7, "radius": 1.0},
    quick={"images": 8, "dims": (1,), "steps_1d": 3, "steps_2d": 2},
    tables=(Table("landscape", ("model", "residual", "dims", "alpha", "beta", "loss", "error_pct", "images",
                                "seed")),)))
