"""Loss landscape slices along filter-normalised random directions (Li et al. 2018), or along the top
eigenvector of the Hessian (the direction of sharpest curvature).

A direction d has the shape of the parameters. Each filter of d (an output channel of a conv weight, a
row of the linear weight) is drawn from N(0, 1) and rescaled to the norm of the same filter in the
trained weights; 1-D parameters (BN scales and shifts, the linear bias) get d = 0, as in the paper's
filter normalisation with BN entries zeroed. The loss at (alpha, beta) is the mean cross-entropy of
the model with weights theta + alpha*d1 + beta*d2 on the sample, evaluated with
``torch.func.functional_call`` on a private copy of the model (:class:`Perturbable`, one copy per run):
``functional_call`` swaps a module's own parameters for the length of the call, so on the shared model
another thread would compute with the perturbed weights. Eval-mode BN (running statistics), bfloat16
autocast with channels_last (the benchmark compares it with float32).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..core.common import Batch, Progress, autocast, chunked, count_wrong, error_pct, model_device, private_copy
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register


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


class Perturbable:
    """A private copy of a model whose weights an evaluation replaces (``torch.func.functional_call``).

    ``functional_call`` swaps the module's own parameters while it runs; on a model that other threads use
    (the dashboard's cached models serve every browser session) they would compute with the perturbed
    weights. One copy per analysis run serves every grid point of it."""

    def __init__(self, model: CifarResNet) -> None:
        if isinstance(model, Perturbable):
            model = model.model
        self.model = private_copy(model)
        self.residual = model.residual
        self.theta = {k: v.detach() for k, v in self.model.named_parameters()}
        self.buffers = {k: v.detach() for k, v in self.model.named_buffers()}

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def params_at(self, a: float, b: float, d1: dict, d2: dict | None) -> dict[str, torch.Tensor]:
        return {k: t + a * d1[k] + (b * d2[k] if d2 is not None else 0) for k, t in self.theta.items()}

    def __call__(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, (params, self.buffers), (x,))


def perturbable(model) -> Perturbable:
    """``model`` itself when it is already a private :class:`Perturbable`, else one private copy of it."""
    return model if isinstance(model, Perturbable) else Perturbable(model)


@torch.no_grad()
def _loss_err(net: Perturbable, params, batch: Batch, bf16: bool, chunk: int = 500) -> tuple[float, float]:
    dev = net.device

    def run(sl: slice) -> tuple[float, int]:
        x = batch.x[sl].to(dev).contiguous(memory_format=torch.channels_last)
        y = batch.y[sl].to(dev)
        with autocast(dev, bf16):
            out = net(params, x)
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


def grid_losses(model: CifarResNet | Perturbable, batch: Batch, points: Sequence[tuple[float, float]], d1: dict,
                d2: dict | None, bf16: bool = True, points_per_pass: int = 1, chunk: int | None = None,
                progress: Progress = None) -> list[tuple[float, float]]:
    """(loss, error %) at each (alpha, beta): one point per forward pass, or ``points_per_pass`` points at
    once through ``torch.func.vmap`` over stacked parameter sets (the convolutions become grouped ones: faster
    on a GPU, whose small-net kernels leave most of it idle; slower on a CPU, see benchmarks/landscape_grid.py).
    The loss is computed in float32 from the logits. ``chunk``: images x grid points per forward pass (default
    500 on the CPU, 10,000 on a GPU; halved on out-of-memory). ``model`` is never touched: the points are
    evaluated on one private copy (pass a :class:`Perturbable` to reuse one across calls)."""
    net = perturbable(model)
    dev = net.device
    images = chunk or (500 if dev.type == "cpu" else 10_000)
    if points_per_pass <= 1:
        out = []
        for j, (a, b) in enumerate(points):
            out.append(_loss_err(net, net.params_at(a, b, d1, d2), batch, bf16=bf16, chunk=images))
            if progress:
                progress((j + 1) / len(points), f"{j + 1} of {len(points)} grid points")
        return out
    from torch.func import vmap

    out = []
    for s in range(0, len(points), points_per_pass):
        pts = points[s:s + points_per_pass]
        a = torch.tensor([p[0] for p in pts], device=dev, dtype=torch.float32)
        b = torch.tensor([p[1] for p in pts], device=dev, dtype=torch.float32)
        stacked = {}
        for k, t in net.theta.items():
            shape = (-1,) + (1,) * t.dim()
            v = t[None] + a.view(shape).to(t.dtype) * d1[k][None]
            if d2 is not None:
                v = v + b.view(shape).to(t.dtype) * d2[k][None]
            stacked[k] = v
        sums = torch.zeros(len(pts), dtype=torch.float64)
        wrong = torch.zeros(len(pts), dtype=torch.long)

        def run(sl: slice):
            x = batch.x[sl].to(dev).contiguous(memory_format=torch.channels_last)
            y = batch.y[sl].to(dev)

            def f(p):
                with autocast(dev, bf16):
                    logits = net(p, x)
                logits = logits if logits.dtype == torch.float64 else logits.float()
                return F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(1) != y).sum()

            with torch.no_grad():
                l, w = vmap(f)(stacked)
            sums.add_(l.double().cpu())
            wrong.add_(w.cpu())

        chunked(run, len(batch), max(1, images // len(pts)))  # images x points per pass stays at `images`
        out += [(float(sums[i]) / len(batch), error_pct(int(wrong[i]), len(batch))) for i in range(len(pts))]
        if progress:
            progress(min(1.0, (s + len(pts)) / len(points)), f"{s + len(pts)} of {len(points)} grid points")
    return out


def landscape(model: CifarResNet | Perturbable, batch: Batch, model_name: str, alphas: Sequence[float],
              betas: Sequence[float] | None = None, seed: int = 0, bf16: bool = True,
              direction: dict[str, torch.Tensor] | None = None, direction_name: str = "random",
              progress: Progress = None) -> pd.DataFrame:
    """Loss and error on a 1-D (``betas`` None) or 2-D grid of (alpha, beta), on one private copy of the model.

    Args:
        model: the net (never touched), or a :class:`Perturbable` to reuse.
        batch: normalised images (N x 3 x 32 x 32) and labels (N).
        model_name: the ``model`` column.
        alphas: the grid along the first direction, e.g. ``grid(21)`` (-1 to 1).
        betas: the grid along the second direction (default None: a 1-D slice).
        seed: the seed of the filter-normalised random directions (default 0).
        bf16: bfloat16 autocast for the forward passes (default True; the loss is computed in float32).
        direction: replaces the first random direction (e.g. :func:`hessian_direction`'s).
        direction_name: the ``direction`` column (default "random").
        progress: an optional ``(fraction, message)`` callback.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> df = landscape(m, b, "resnet8", alphas=[-1.0, 0.0, 1.0], betas=[0.0, 1.0], bf16=False)
        >>> len(df), sorted(float(v) for v in df["beta"].unique())  # 3 x 2 grid points
        (6, [0.0, 1.0])
    """
    net = perturbable(model)  # the model itself is never touched
    d1 = direction if direction is not None else filter_normalized_direction(net.model, seed)
    d2 = filter_normalized_direction(net.model, seed + 1) if betas is not None else None
    grid = [(float(a), 0.0) for a in alphas] if betas is None else [(float(a), float(b)) for b in betas for a in alphas]
    sub = None if progress is None else (lambda f, msg: progress(f, f"loss landscape of {model_name}: {msg}"))
    losses = grid_losses(net, batch, grid, d1, d2, bf16=bf16, progress=sub)
    return pd.DataFrame([{"model": model_name, "residual": net.residual, "dims": 1 if betas is None else 2,
                          "alpha": a, "beta": b, "loss": loss, "error_pct": err, "images": len(batch), "seed": seed,
                          "direction": direction_name} for (a, b), (loss, err) in zip(grid, losses)])


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
    frames, net = [], Perturbable(ctx.model)  # one private copy for the whole run
    for j, dims in enumerate(p["dims"]):
        g = grid(p["steps_1d"] if dims == 1 else p["steps_2d"], p["radius"])
        start = 0.5 if d is not None else 0.0
        frames.append(landscape(net, b, ctx.name, alphas=g, betas=g if dims == 2 else None, seed=ctx.seed, direction=d,
                                direction_name=p["direction"],
                                progress=lambda f, msg, j=j: ctx.tick(start + (1 - start) * (j + f) / len(p["dims"]), msg)))
    out = pd.concat(frames, ignore_index=True)
    for k, v in extra.items():
        out[k] = v
    return {"landscape": out}


AT_ALPHA = 0.5  # the |α| at which the findings state the loss rise


def landscape_findings(df: pd.DataFrame, at: float = AT_ALPHA) -> pd.DataFrame:
    """Per model, read off the slice along α (β = 0): the loss at the trained weights, its rise at ``|α| = at`` (the
    mean over α = ±at, or the grid's nearest |α|) and at the largest |α|, and the curvature at α = 0 (the second
    difference over the nearest grid points ±h). Then, for each depth with a plain and a residual net, whether the
    residual net's rise is the smaller one (Li et al. 2018: shortcuts keep the surface flat and smooth).

    Example:
        >>> a = [-1.0, -0.5, 0.0, 0.5, 1.0]
        >>> t = pd.DataFrame({"model": "m", "residual": True, "beta": 0.0, "alpha": a, "loss": [x * x + 1 for x in a]})
        >>> landscape_findings(t)["sentence"][0]
        'm: loss 1.000 at the trained weights; it rises by 0.250 at |α| = 0.5 and by 1.000 at |α| = 1; curvature at the minimum 2.000 (second difference over ±0.5).'
    """
    rows, rise = [], {}
    for m, g in df.groupby("model", sort=False):
        line = g[g["beta"].fillna(0.0).abs() < 1e-12] if "beta" in g else g
        line = line.groupby("alpha", as_index=False)["loss"].mean().sort_values("alpha")
        if len(line) < 3 or not (line["alpha"].abs() < 1e-12).any():
            continue
        a, loss = line["alpha"].to_numpy(float), line["loss"].to_numpy(float)
        i0 = int(abs(a).argmin())
        l0 = loss[i0]
        near = float(abs(abs(a) - at).min())
        sel = abs(abs(a) - at) <= near + 1e-12
        at_used = float(abs(a[sel]).max())
        r_at = float(loss[sel].mean() - l0)
        far = float(abs(a).max())
        r_far = float(loss[abs(abs(a) - far) < 1e-12].mean() - l0)
        h = float(min(a[i0 + 1] - a[i0], a[i0] - a[i0 - 1])) if 0 < i0 < len(a) - 1 else float("nan")
        curv = float((loss[i0 + 1] - 2 * l0 + loss[i0 - 1]) / h ** 2) if h == h else float("nan")
        residual = bool(g["residual"].iloc[0])
        rise[m] = (residual, r_at)
        rows.append({"topic": "landscape", "model": m, "sentence": (
            f"{m}: loss {l0:.3f} at the trained weights; it rises by {r_at:.3f} at |α| = {at_used:g} and by "
            f"{r_far:.3f} at |α| = {far:g}; curvature at the minimum {curv:.3f} (second difference over ±{h:g}).")})
    from ..core.arch import parse_name

    by_depth: dict[int, dict[bool, list[tuple[str, float]]]] = {}
    for m, (res, r) in rise.items():
        try:
            d = parse_name(m).depth
        except ValueError:
            continue
        by_depth.setdefault(d, {True: [], False: []})[res].append((m, r))
    for d, kinds in sorted(by_depth.items()):
        for (pm, pr) in kinds[False]:
            for (rm, rr) in kinds[True]:
                rows.append({"topic": "landscape", "model": f"{pm} vs {rm}", "sentence": (
                    f"At {d} layers the residual net's loss rises {'less' if rr < pr else 'more'} than the plain net's "
                    f"at |α| = {at:g} ({rm} {rr:.3f}, {pm} {pr:.3f}): "
                    + ("Li et al.'s flatter residual surface shows here." if rr < pr else
                       "Li et al.'s flatter residual surface does not show on this slice."))})
    return pd.DataFrame(rows, columns=["topic", "model", "sentence"])


def _combine(t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if "landscape" not in t:
        return {}
    return {"landscape_contours": landscape_contours(t["landscape"]), "landscape_findings": landscape_findings(t["landscape"])}


register(Analysis(
    name="landscape", title="Loss landscape along filter-normalised directions (Li et al. 2018)", run=_run,
    work=lambda p: sum(p[f"steps_{d}d"] ** d for d in p["dims"])
    + (2 * p["hessian_iter"] * p["hessian_images"] / p["images"] if p["direction"] == "hessian" else 0),
    page="pages/5_Loss_landscape.py", order=50,
    defaults={"images": 256, "dims": (1, 2), "steps_1d": 21, "steps_2d": 7, "radius": 1.0, "direction": "random",
              "hessian_images": 100, "hessian_iter": 20},
    quick={"images": 8, "dims": (1,), "steps_1d": 3, "steps_2d": 2, "direction": "hessian", "hessian_images": 8,
           "hessian_iter": 3},
    combine=_combine,
    tables=(Table("landscape", ("model", "residual", "dims", "alpha", "beta", "loss", "error_pct", "images",
                                "seed", "direction")),
            Table("landscape_contours", ("model", "level", "segment", "end", "alpha", "beta")),
            Table("landscape_findings", ("topic", "model", "sentence")))))


# ---------------------------------------------------------------------------- contours (Li et al.'s 2-D figure)
# The edges of a grid cell, as pairs of its corners (0 = (i, j), 1 = (i+1, j), 2 = (i+1, j+1), 3 = (i, j+1)),
# and the two edges that meet at each corner.
_EDGES = ((0, 1), (1, 2), (3, 2), (0, 3))
_CORNER_EDGES = ((3, 0), (0, 1), (1, 2), (2, 3))


def contour_segments(alphas: Sequence[float], betas: Sequence[float], z: np.ndarray,
                     levels: Sequence[float]) -> pd.DataFrame:
    """Iso-loss lines of a grid by marching squares: ``z[j, i]`` is the value at (alphas[i], betas[j]).

    Each crossing of a level on a cell edge is placed by linear interpolation (exact for a function linear
    along the edge); a saddle cell (all four edges crossed) is split by the mean of its corners. Cells with a
    missing value are left out. Returns one row per segment end: level, segment, end (0/1), alpha, beta."""
    a, b, z = np.asarray(alphas, float), np.asarray(betas, float), np.asarray(z, float)
    if z.shape != (len(b), len(a)):
        raise ValueError(f"z has shape {z.shape}, expected {(len(b), len(a))} (betas x alphas)")
    rows, seg = [], 0
    for lev in levels:
        for j in range(len(b) - 1):
            for i in range(len(a) - 1):
                v = (z[j, i], z[j, i + 1], z[j + 1, i + 1], z[j + 1, i])
                if any(np.isnan(v)):
                    continue
                xy = ((a[i], b[j]), (a[i + 1], b[j]), (a[i + 1], b[j + 1]), (a[i], b[j + 1]))
                above = [x >= lev for x in v]
                if all(above) or not any(above):
                    continue
                cross = {}
                for e, (p, q) in enumerate(_EDGES):
                    if above[p] != above[q]:
                        t = (lev - v[p]) / (v[q] - v[p])
                        cross[e] = (xy[p][0] + t * (xy[q][0] - xy[p][0]), xy[p][1] + t * (xy[q][1] - xy[p][1]))
                if len(cross) == 2:
                    pairs = [tuple(cross)]
                else:  # a saddle: cut off the two corners on the other side of the cell's mean
                    centre_above = float(np.mean(v)) >= lev
                    pairs = [_CORNER_EDGES[k] for k in range(4) if above[k] != centre_above]
                for e1, e2 in pairs:
                    for end, e in enumerate((e1, e2)):
                        rows.append({"level": float(lev), "segment": seg, "end": end,
                                     "alpha": float(cross[e][0]), "beta": float(cross[e][1])})
                    seg += 1
    return pd.DataFrame(rows, columns=["level", "segment", "end", "alpha", "beta"])


def contour_levels(lo: float, hi: float, n: int = 12) -> list[float]:
    """``n`` levels spaced evenly in log(loss) strictly inside (lo, hi): the same levels for every model."""
    lo, hi = max(float(lo), 1e-6), max(float(hi), 1e-6)
    if hi <= lo:
        return [lo]
    return [float(v) for v in np.exp(np.linspace(np.log(lo), np.log(hi), n + 2)[1:-1])]


def landscape_contours(df: pd.DataFrame, n_levels: int = 12) -> pd.DataFrame:
    """Contour segments of each model's 2-D grid in ``df`` (rows of :func:`landscape`), all on one set of
    levels spanning every model's losses, so that one colour means one loss across the side-by-side plots."""
    two = df[df["dims"] == 2]
    if two.empty:
        return pd.DataFrame(columns=["model", "level", "segment", "end", "alpha", "beta"])
    levels = contour_levels(two["loss"].min(), two["loss"].max(), n_levels)
    out = []
    for name, g in two.groupby("model", sort=False):
        piv = g.pivot_table(index="beta", columns="alpha", values="loss")
        seg = contour_segments(piv.columns.to_numpy(), piv.index.to_numpy(), piv.to_numpy(), levels)
        seg.insert(0, "model", name)
        out.append(seg)
    return pd.concat(out, ignore_index=True)
