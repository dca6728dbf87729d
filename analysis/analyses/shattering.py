"""Shattered gradients (Balduzzi et al. 2017): how fast the input gradient decorrelates along a line of inputs.

What is measured (float32, eval-mode BN, so the points of the line are independent of each other):

* A line of ``points`` inputs: ``mode="interpolate"``, x(t) = (1 - t)·a + t·b between two test images a and
  b (t from 0 to 1); ``mode="sweep"``, x(t) = a + t·r·d around one test image along a random direction d
  with ‖d‖ = ‖a‖ (t from -1 to 1, r = ``radius``). The images and d are drawn with the seed.
* At every point the gradient, w.r.t. the input, of a scalar read-out: for the net's output, <u, logits>
  with a fixed random unit vector u; for block i, <u_i, h_i(x)> / √dim(h_i) with a fixed random Gaussian
  u_i of the block output's shape. The same u's for every model (same seed), so models are compared on
  the same read-out.
* ``correlation`` at lag k: the mean over i of the cosine similarity of the gradients at points i and i+k;
  ``distance`` is the input-space L2 distance between the two points (normalised-input units).
  ``correlation_length``: the distance at which the correlation first falls below 1/e (linear
  interpolation between lags); where it never does along the line, the length of the line, flagged
  ``censored``. A white-noise gradient has a correlation length near the point spacing; a linear model's
  gradient never decorrelates.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..core import data as D
from ..core.common import Batch, Progress, model_device, private_copy
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register

THRESHOLD = 1.0 / math.e


def line_inputs(a: torch.Tensor, b: torch.Tensor | None, points: int, mode: str = "interpolate",
                radius: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs N x C x H x W, the line parameter t) for a line through ``a`` (and ``b``)."""
    if mode == "interpolate":
        if b is None:
            raise ValueError("mode 'interpolate' needs two images")
        t = torch.linspace(0.0, 1.0, points)
        x = (1 - t)[:, None, None, None] * a[None] + t[:, None, None, None] * b[None]
    elif mode == "sweep":
        g = torch.Generator().manual_seed(seed)
        d = torch.randn(a.shape, generator=g)
        d = d * (a.norm() / d.norm().clamp_min(1e-12))
        t = torch.linspace(-1.0, 1.0, points)
        x = a[None] + (radius * t)[:, None, None, None] * d[None]
    else:
        raise ValueError(f"mode must be 'interpolate' or 'sweep', not {mode!r}")
    return x, t


def autocorrelation(grads: torch.Tensor, x: torch.Tensor, max_lag: int | None = None) -> pd.DataFrame:
    """Mean cosine similarity of the gradients (N x D) at points i and i + lag, for every lag, with the
    mean input-space distance between such points."""
    g = grads.flatten(1).double()
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
    xf = x.flatten(1).double()
    n = len(g)
    max_lag = min(max_lag or n - 1, n - 1)
    rows = []
    for lag in range(0, max_lag + 1):
        c = (g[: n - lag] * g[lag:]).sum(1)
        dist = (xf[lag:] - xf[: n - lag]).norm(dim=1)
        rows.append({"lag": lag, "distance": float(dist.mean()), "correlation": float(c.mean()), "pairs": n - lag})
    return pd.DataFrame(rows)


def correlation_length(ac: pd.DataFrame, threshold: float = THRESHOLD) -> tuple[float, bool]:
    """(distance at which the correlation first drops below ``threshold``, censored)."""
    d, c = ac["distance"].to_numpy(), ac["correlation"].to_numpy()
    below = np.nonzero(c < threshold)[0]
    if len(below) == 0:
        return float(d[-1]), True
    j = int(below[0])
    if j == 0:
        return 0.0, False
    frac = (c[j - 1] - threshold) / (c[j - 1] - c[j])
    return float(d[j - 1] + frac * (d[j] - d[j - 1])), False


def _readouts(model: CifarResNet, x: torch.Tensor, seed: int, scale: float | None = None
              ) -> tuple[list[str], list[torch.Tensor]]:
    """The scalar read-outs summed over the line's points (points are independent in eval mode), one per
    block and one for the output, with fixed random weights."""
    g = torch.Generator().manual_seed(seed + 7)
    h = model.stem_forward(x)
    names, outs = [], []
    for info, blk in model.blocks():
        h = blk(h, scale=scale)
        u = torch.randn(h.shape[1:], generator=g).to(h.device)
        names.append(info.name)
        outs.append((h * u).sum() / math.sqrt(u.numel()))
    logits = model.head(h)
    u = torch.randn(logits.shape[1], generator=g).to(h.device)
    names.append("output")
    outs.append((logits * (u / u.norm())).sum())
    return names, outs


def shattering(model: CifarResNet, x: torch.Tensor, model_name: str, state: str, lam: float | None = None,
               seed: int = 0, threshold: float = THRESHOLD, progress: Progress = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per read-out with its correlation length, the autocorrelation curves) for one model and a
    line of inputs ``x``. ``lam`` overrides the shortcut scale (at initialisation, for the λ sweep).

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> x, t = line_inputs(b.x[0], b.x[1], points=6)  # 6 x 3 x 32 x 32 between two images
        >>> rows, curves = shattering(m, x, "resnet8", state="trained")  # args: model, line, name, state, lam, seed
        >>> list(rows["readout"]), len(curves)  # a read-out per block and the output; 6 lags each
        (['stage1.block0', 'stage2.block0', 'stage3.block0', 'output'], 24)
    """
    m = private_copy(model)
    dev = model_device(m)
    xs = x.detach().to(dev).float().clone().requires_grad_(True)
    scale = None if lam is None else float(lam)
    names, outs = _readouts(m, xs, seed, scale=scale)
    lam_v = m.block(0).default_lam if scale is None else scale
    rows, curves = [], []
    for j, (nm, o) in enumerate(zip(names, outs)):
        (gx,) = torch.autograd.grad(o, xs, retain_graph=j < len(outs) - 1)
        ac = autocorrelation(gx.detach().cpu(), x.cpu())
        length, censored = correlation_length(ac, threshold)
        idx = j if nm != "output" else len(names) - 1
        rows.append({"model": model_name, "residual": model.residual, "state": state, "lambda": lam_v,
                     "readout": nm, "block_index": idx, "correlation_length": length, "censored": censored,
                     "lag1_correlation": float(ac.loc[1, "correlation"]) if len(ac) > 1 else float("nan"),
                     "spacing": float(ac.loc[1, "distance"]) if len(ac) > 1 else float("nan"),
                     "points": len(x), "threshold": threshold})
        ac.insert(0, "readout", nm)
        ac.insert(0, "lambda", lam_v)
        ac.insert(0, "state", state)
        ac.insert(0, "model", model_name)
        ac["block_index"] = idx
        curves.append(ac)
        if progress:
            progress((j + 1) / len(outs), f"gradients along the line: {model_name} ({state}), {nm}")
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def input_line(points: int, mode: str, radius: float, seed: int, data=None, batch: Batch | None = None) -> torch.Tensor:
    """The line of normalised inputs the analysis uses: through seeded random test images (or a given batch)."""
    if batch is not None:
        a, b = batch.x[0].cpu().float(), batch.x[min(1, len(batch) - 1)].cpu().float()
    else:
        split = D.load_split("test", data)
        idx = D.sample_indices(len(split), 2, seed + 2)
        a, b = (D.normalize(split.images[i:i + 1])[0] for i in idx.tolist())
    x, _ = line_inputs(a, b if mode == "interpolate" else None, points, mode=mode, radius=radius, seed=seed)
    return x


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    x = input_line(p["points"], p["mode"], p["radius"], seed=ctx.seed, data=ctx.data, batch=ctx.batch)
    jobs: list[tuple[str, float | None]] = [(s, None) for s in p["states"]]
    if ctx.model.residual:
        jobs += [("init", float(l)) for l in p["lambdas"]]
    rows, curves, init = [], [], None
    for j, (state, lam) in enumerate(jobs):
        if state == "trained":
            m = ctx.model
        else:
            init = init if init is not None else ctx.init_model()
            m = init
        r, c = shattering(m, x, ctx.name, state=state, lam=lam, seed=ctx.seed,
                          progress=lambda f, msg, j=j: ctx.tick((j + f) / len(jobs), msg))
        r["mode"], c["mode"] = p["mode"], p["mode"]
        rows.append(r)
        curves.append(c)
    return {"shattering": pd.concat(rows, ignore_index=True), "shattering_autocorr": pd.concat(curves, ignore_index=True)}


register(Analysis(
    name="shattering", title="Shattered gradients: how fast input gradients decorrelate (Balduzzi et al. 2017)",
    work=lambda p: p["points"] * (len(p["states"]) + len(p["lambdas"])),
    run=_run, page="pages/2_Gradient_flow.py", order=25,
    defaults={"points": 32, "mode": "interpolate", "radius": 0.5, "states": ("trained", "init"), "lambdas": (0.5, 1.5)},
    quick={"points": 6, "lambdas": (0.5,)},
    tables=(Table("shattering", ("model", "residual", "state", "lambda", "readout", "block_index", "correlation_length",
                                 "censored", "lag1_correlation", "spacing", "points", "threshold", "mode")),
            Table("shattering_autocorr", ("model", "state", "lambda", "readout", "block_index", "lag", "distance",
                                          "correlation", "pairs", "mode")))))
