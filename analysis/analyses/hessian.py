"""Curvature of the loss: the Hessian w.r.t. all weights, plain vs residual (PyHessian's measurements).

What is measured (float32 on a private copy, eval-mode BN with the running statistics, no autocast):

* L(θ) = mean cross-entropy over the sample; H = ∇²L(θ) w.r.t. every parameter (conv and linear weights,
  BN scales and shifts, the linear bias). Hessian-vector products (HVPs) come from ``torch.func``
  (forward-over-reverse: the jvp of the gradient), from double backward (``method="double_backward"``), or
  from the gradient's graph built once and kept (``"kept_graph"``, what ``"auto"`` uses when the sample fits in one
  chunk); the benchmark compares them. The sample is cut into chunks; the chunks' HVPs are averaged with
  weights chunk/N, so the result is the HVP of the whole sample's mean loss.
* ``eigenvalue``: the top-k eigenvalues by power iteration with deflation (each new vector kept
  orthogonal to the ones found), stopped when the Rayleigh quotient changes by less than ``tol``
  (relative) or after ``max_iter`` HVPs. Power iteration finds the eigenvalue of largest magnitude.
* ``trace``: Hutchinson's estimator E[vᵀHv] with Rademacher v, with its standard error, stopped when the
  running mean changes by less than ``tol`` (relative) or after ``trace_iter`` samples. One HVP per sample
  gives every scope's trace at once: v_sᵀ(Hv)_s is an unbiased estimate of the trace of the diagonal block
  of scope s (stem, stage1..3, head), because v's entries are independent.
* density: stochastic Lanczos quadrature (Ghorbani et al. 2019, as in PyHessian): ``density_runs``
  Lanczos runs of ``lanczos_steps`` steps with full reorthogonalisation from Rademacher starts; the Ritz
  values with weights τ² (the squared first components of the eigenvectors of the tridiagonal matrix),
  smoothed by a Gaussian of width ``sigma`` on a grid.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp

from ..core.common import Batch, Progress, model_device, private_copy
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register

Vec = list[torch.Tensor]
HVP = Callable[[Vec], Vec]


# ---------------------------------------------------------------------------- vector helpers
def _dot(a: Vec, b: Vec) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def _norm(a: Vec) -> float:
    return math.sqrt(max(_dot(a, a), 0.0))


def _axpy(alpha: float, x: Vec, y: Vec) -> Vec:
    return [yi + alpha * xi for xi, yi in zip(x, y)]


def _scale(alpha: float, x: Vec) -> Vec:
    return [alpha * xi for xi in x]


def _normalize(v: Vec) -> Vec:
    n = _norm(v)
    return _scale(1.0 / n, v) if n > 0 else v


def _orthogonalize(v: Vec, basis: Sequence[Vec]) -> Vec:
    for u in basis:
        v = _axpy(-_dot(u, v), u, v)
    return v


def _randn_like(template: Vec, gen: torch.Generator) -> Vec:
    return [torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device) for t in template]


def _rademacher_like(template: Vec, gen: torch.Generator) -> Vec:
    return [(torch.randint(0, 2, t.shape, generator=gen) * 2 - 1).to(t.device, t.dtype) for t in template]


# ---------------------------------------------------------------------------- the three algorithms
def top_eigenvalues(hvp: HVP, template: Vec, k: int = 1, max_iter: int = 100, tol: float = 1e-3, seed: int = 0,
                    progress: Progress = None) -> list[dict]:
    """Top-k eigenvalues (largest magnitude first) by power iteration with deflation.
    Returns one dict per eigenvalue: k, eigenvalue, iterations, converged, and the eigenvector."""
    gen = torch.Generator().manual_seed(seed)
    found: list[Vec] = []
    out = []
    for i in range(k):
        v = _normalize(_orthogonalize(_randn_like(template, gen), found))
        lam, converged, it = None, False, 0
        for it in range(1, max_iter + 1):
            hv = hvp(v)
            new = _dot(hv, v)  # the Rayleigh quotient of v (unit norm)
            done = lam is not None and abs(new - lam) <= tol * (abs(lam) + 1e-12)
            lam = new
            if done:
                converged = True
                break
            if progress:
                progress((i + it / max_iter) / k, f"eigenvalue {i + 1} of {k}: iteration {it}, λ ≈ {lam:.4g}")
            if it < max_iter:
                v = _normalize(_orthogonalize(hv, found))
        found.append(v)  # the vector whose Rayleigh quotient is the eigenvalue returned
        out.append({"k": i + 1, "eigenvalue": lam, "iterations": it, "converged": converged, "vector": v})
    return out


def hutchinson_trace(hvp: HVP, template: Vec, scopes: dict[str, list[int]] | None = None, max_iter: int = 100,
                     tol: float = 1e-3, min_iter: int = 5, seed: int = 0, progress: Progress = None) -> list[dict]:
    """Hutchinson's trace estimate for the whole Hessian and (``scopes``: name -> tensor indices) for the
    diagonal block of each scope, from the same Rademacher samples."""
    gen = torch.Generator().manual_seed(seed)
    scopes = {"all": list(range(len(template))), **(scopes or {})}
    samples: dict[str, list[float]] = {s: [] for s in scopes}
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        v = _rademacher_like(template, gen)
        hv = hvp(v)
        for s, idx in scopes.items():
            samples[s].append(_dot([v[i] for i in idx], [hv[i] for i in idx]))
        a = samples["all"]
        if it >= min_iter:
            prev, cur = float(np.mean(a[:-1])), float(np.mean(a))
            if abs(cur - prev) <= tol * (abs(cur) + 1e-12):
                converged = True
                break
        if progress:
            progress(it / max_iter, f"trace: sample {it}, ≈ {np.mean(a):.4g}")
    rows = []
    for s, vals in samples.items():
        x = np.asarray(vals, dtype=np.float64)
        se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
        rows.append({"scope": s, "trace": float(x.mean()), "trace_std_error": se, "iterations": it,
                     "converged": converged})
    return rows


def lanczos(hvp: HVP, template: Vec, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps with full reorthogonalisation from a Rademacher start: (Ritz values, weights τ²)."""
    gen = torch.Generator().manual_seed(seed)
    v = _normalize(_rademacher_like(template, gen))
    basis: list[Vec] = []
    alphas, betas = [], []
    w_prev, beta = None, 0.0
    for j in range(steps):
        basis.append(v)
        w = hvp(v)
        alpha = _dot(w, v)
        w = _axpy(-alpha, v, w)
        if w_prev is not None:
            w = _axpy(-beta, w_prev, w)
        w = _orthogonalize(w, basis)
        alphas.append(alpha)
        beta = _norm(w)
        if j == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        w_prev, v = v, _scale(1.0 / beta, w)
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    evals, evecs = np.linalg.eigh(t)
    return evals, evecs[0, :] ** 2


def density_grid(nodes: Sequence[np.ndarray], weights: Sequence[np.ndarray], points: int = 200,
                 sigma: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Average of Gaussian-smoothed spectral measures on a grid spanning the Ritz values."""
    allv = np.concatenate(nodes)
    lo, hi = float(allv.min()), float(allv.max())
    span = max(hi - lo, 1e-12)
    sigma = sigma or span / 100.0
    grid = np.linspace(lo - 3 * sigma, hi + 3 * sigma, points)
    dens = np.zeros_like(grid)
    for nd, wt in zip(nodes, weights):
        dens += (wt[None, :] * np.exp(-((grid[:, None] - nd[None, :]) ** 2) / (2 * sigma ** 2))).sum(1)
    dens /= len(nodes) * sigma * math.sqrt(2 * math.pi)
    return grid, dens, sigma


# ---------------------------------------------------------------------------- the loss's HVP on a model
def scope_of(param_name: str) -> str:
    """'stem', 'stage1'..'stage3' or 'head' (the final BN of pre-activation nets and the classifier)."""
    head = param_name.split(".", 1)[0]
    return head if head in ("stem", "stage1", "stage2", "stage3") else "head"


def resolve_method(method: str, images: int, chunk: int) -> str:
    """The HVP method "auto" stands for: "kept_graph" when the images fit in one chunk (its kept graph then takes
    less memory than forward-over-reverse on the same chunk: 3.2 against 5.0 GB above the start for resnet56 on 200
    images, measured), "func" beyond (memory bounded by one chunk at any number of images)."""
    if method not in ("auto", "func", "double_backward", "kept_graph"):
        raise ValueError(f"method must be 'auto', 'func', 'double_backward' or 'kept_graph', not {method!r}")
    if method == "auto":
        return "kept_graph" if images <= chunk else "func"
    return method


def model_hvp(model: CifarResNet, batch: Batch, chunk: int = 250, method: str = "auto",
              data_parallel: bool = False) -> tuple[HVP, Vec, list[str]]:
    """(hvp, parameters as a template, their names) for the mean cross-entropy of ``model`` on ``batch``.
    The products are taken on one private float32 copy of ``model`` in eval mode: ``functional_call`` swaps a
    module's parameters while it runs, which another thread using ``model`` would see.

    ``method``: "func" (forward-over-reverse, the forward and backward passes run again for every product: memory
    bounded by one chunk), "double_backward" (the same, by double backward), "kept_graph" (the gradient and its
    graph are computed once per chunk and kept, so each product is one backward pass through the kept graphs, as
    PyHessian does: faster, memory grows with the chunks), or "auto" (:func:`resolve_method`).

    ``data_parallel`` (under torchrun): every rank holds the same model and batch and computes the product on
    its share of the images; an ``all_reduce`` sums the shares, so every rank gets the whole
    product and the iterations built on it (same seeds) stay identical on all ranks."""
    method = resolve_method(method, len(batch), chunk)
    model = private_copy(model)  # eval mode, float32, seen by no other thread
    dev = model_device(model)
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    buffers = {n: b for n, b in model.named_buffers()}
    n_total = len(batch)
    chunks = [(s, min(n_total, s + chunk)) for s in range(0, n_total, chunk)]

    def loss_of(p: Vec, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({k: v for k, v in zip(names, p)}, buffers), (x,))
        return F.cross_entropy(out, y)

    from ..engine import distributed as dd

    w = dd.world()
    shared = data_parallel and w.distributed
    if shared:  # this rank's contiguous share of the images, in chunks
        lo, hi = n_total * w.rank // w.size, n_total * (w.rank + 1) // w.size
        chunks = [(s, min(hi, s + chunk)) for s in range(lo, hi, chunk)]

    kept: list[tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]] = []  # per chunk: (leaves, gradient with graph)

    def hvp(v: Vec) -> Vec:
        acc = [torch.zeros_like(p) for p in params]
        for ci, (s, e) in enumerate(chunks):
            x, y = batch.x[s:e].to(dev).float(), batch.y[s:e].to(dev)
            wt = (e - s) / n_total
            if method == "kept_graph":
                if len(kept) <= ci:
                    ps = [p.clone().requires_grad_(True) for p in params]
                    kept.append((ps, torch.autograd.grad(loss_of(ps, x, y), ps, create_graph=True)))
                ps, g = kept[ci]
                hv = torch.autograd.grad(g, ps, grad_outputs=v, retain_graph=True)
            elif method == "func":
                _, hv = jvp(lambda *p: grad(loss_of)(list(p), x, y), tuple(params), tuple(v))
            else:
                ps = [p.clone().requires_grad_(True) for p in params]
                g = torch.autograd.grad(loss_of(ps, x, y), ps, create_graph=True)
                hv = torch.autograd.grad(g, ps, grad_outputs=v)
            for a, h in zip(acc, hv):
                a.add_(h.detach(), alpha=wt)
        if shared:
            import torch.distributed as dist

            flat = torch.cat([a.reshape(-1) for a in acc])  # one collective per product
            dist.all_reduce(flat)
            acc = [t.view_as(a) for t, a in zip(flat.split([a.numel() for a in acc]), acc)]
        return acc

    return hvp, params, names


def hessian_analysis(model: CifarResNet, batch: Batch, model_name: str, top_k: int = 1, max_iter: int = 20,
                     tol: float = 1e-3, trace_iter: int = 20, density_runs: int = 1, lanczos_steps: int = 20,
                     density_points: int = 200, chunk: int = 250, method: str = "auto", seed: int = 0,
                     progress: Progress = None, data_parallel: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, Vec]:
    """(hessian rows, density rows, the top eigenvector) for one model; see the module docstring.
    ``data_parallel``: under torchrun, every Hessian-vector product is split across the ranks by images.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> h, dens, v = hessian_analysis(m, b, "resnet8", max_iter=3, trace_iter=3, lanczos_steps=3, density_points=50)
        >>> sorted(h["quantity"].unique()), len(dens)  # eigenvalue (k = 1) and trace (all and per scope); 50 points
        (['eigenvalue', 'trace'], 50)
    """
    method = resolve_method(method, len(batch), chunk)
    hvp, template, names = model_hvp(model, batch, chunk=chunk, method=method, data_parallel=data_parallel)
    counted = {"n": 0}

    def counting(v: Vec) -> Vec:
        counted["n"] += 1
        return hvp(v)

    scopes: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        scopes.setdefault(scope_of(n), []).append(i)
    sizes = {s: sum(template[i].numel() for i in idx) for s, idx in scopes.items()}
    total_steps = top_k * max_iter + trace_iter + density_runs * lanczos_steps

    def sub(offset: int, span: int):
        if not progress:
            return None
        return lambda f, msg: progress(min(1.0, (offset + f * span) / total_steps), f"{model_name}: {msg}")

    base = {"model": model_name, "residual": model.residual, "images": len(batch), "method": method, "tol": tol}
    rows = []
    eig = top_eigenvalues(counting, template, k=top_k, max_iter=max_iter, tol=tol, seed=seed,
                          progress=sub(0, top_k * max_iter))
    for e in eig:
        rows.append({**base, "quantity": "eigenvalue", "scope": "all", "k": e["k"], "value": e["eigenvalue"],
                     "std_error": float("nan"), "iterations": e["iterations"], "converged": e["converged"],
                     "params_in_scope": sum(sizes.values())})
    trace = hutchinson_trace(counting, template, scopes={s: idx for s, idx in scopes.items()}, max_iter=trace_iter,
                             tol=tol, seed=seed + 1, progress=sub(top_k * max_iter, trace_iter)) if trace_iter else []
    for t in trace:
        rows.append({**base, "quantity": "trace", "scope": t["scope"], "k": 0, "value": t["trace"],
                     "std_error": t["trace_std_error"], "iterations": t["iterations"], "converged": t["converged"],
                     "params_in_scope": sizes.get(t["scope"], sum(sizes.values()))})
    nodes, weights = [], []
    for r in range(density_runs):
        nd, wt = lanczos(counting, template, lanczos_steps, seed=seed + 100 + r)
        nodes.append(nd)
        weights.append(wt)
        if progress:
            progress(min(1.0, (top_k * max_iter + trace_iter + (r + 1) * lanczos_steps) / total_steps),
                     f"{model_name}: spectral density, run {r + 1} of {density_runs}")
    dens_df = pd.DataFrame(columns=["model", "residual", "eigenvalue", "density", "sigma", "runs", "lanczos_steps",
                                    "images"])
    if nodes:
        grid, dens, sigma = density_grid(nodes, weights, points=density_points)
        dens_df = pd.DataFrame({"model": model_name, "residual": model.residual, "eigenvalue": grid, "density": dens,
                                "sigma": sigma, "runs": density_runs, "lanczos_steps": lanczos_steps,
                                "images": len(batch)})
    df = pd.DataFrame(rows)
    df["hvps"] = counted["n"]
    vec = eig[0]["vector"] if eig else None
    return df, dens_df, vec


def top_eigenvector_direction(model: CifarResNet, batch: Batch, max_iter: int = 20, tol: float = 1e-3,
                              seed: int = 0, progress: Progress = None) -> tuple[dict[str, torch.Tensor], float]:
    """The top Hessian eigenvector as a direction over the parameters (unit norm over all of them), and its
    eigenvalue: a direction for the loss-landscape slice along which the loss curves most."""
    hvp, template, names = model_hvp(model, batch)
    e = top_eigenvalues(hvp, template, k=1, max_iter=max_iter, tol=tol, seed=seed, progress=progress)[0]
    dev = model_device(model)
    return {n: v.to(dev) for n, v in zip(names, e["vector"])}, e["eigenvalue"]


def compare_curvature(h: pd.DataFrame) -> pd.DataFrame:
    """Plain against residual at equal depth (:func:`zoo.pairs`): the top eigenvalue, and the trace with its
    95 % interval (± 1.96 standard errors of Hutchinson's estimate). ``trace_smaller`` is "yes" or "no" where the
    two intervals do not overlap, "cannot tell" where they do."""
    from ..core.zoo import pairs

    cols = ["depth", "plain", "residual", "plain_top_eigenvalue", "residual_top_eigenvalue", "top_smaller",
            "plain_trace", "residual_trace", "plain_trace_se", "residual_trace_se", "trace_smaller"]
    if h.empty:
        return pd.DataFrame(columns=cols)
    top = h[(h["quantity"] == "eigenvalue") & (h["k"] == 1)].set_index("model")["value"]
    tr = h[(h["quantity"] == "trace") & (h["scope"] == "all")].set_index("model")
    rows = []
    for p, r, d in pairs(list(h["model"].unique())):
        if p not in top or r not in top:
            continue
        row = {"depth": d, "plain": p, "residual": r, "plain_top_eigenvalue": float(top[p]),
               "residual_top_eigenvalue": float(top[r]), "top_smaller": bool(top[r] < top[p])}
        if p in tr.index and r in tr.index:
            tp, tq = float(tr.loc[p, "value"]), float(tr.loc[r, "value"])
            sp, sq = float(tr.loc[p, "std_error"]), float(tr.loc[r, "std_error"])
            verdict = "yes" if tq + 1.96 * sq < tp - 1.96 * sp else "no" if tq - 1.96 * sq > tp + 1.96 * sp else \
                "cannot tell"
            row.update({"plain_trace": tp, "residual_trace": tq, "plain_trace_se": sp, "residual_trace_se": sq,
                        "trace_smaller": verdict})
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    if p["top_k"] < 1:
        raise ValueError("hessian: top_k must be at least 1")
    df, dens, _ = hessian_analysis(ctx.model, ctx.sample(p["images"]), ctx.name, top_k=p["top_k"],
                                   max_iter=p["max_iter"], tol=p["tol"], trace_iter=p["trace_iter"],
                                   density_runs=p["density_runs"], lanczos_steps=p["lanczos_steps"],
                                   method=p["method"], seed=ctx.seed, progress=ctx.progress)
    return {"hessian": df, "hessian_density": dens} if len(dens) else {"hessian": df}


register(Analysis(
    name="hessian", title="Curvature: top Hessian eigenvalues, trace and spectral density", run=_run,
    work=lambda p: p["top_k"] * p["max_iter"] + p["trace_iter"] + p["lanczos_steps"] * p["density_runs"],
    page="pages/8_Curvature.py", order=60,
    defaults={"images": 100, "top_k": 2, "max_iter": 20, "tol": 1e-2, "trace_iter": 20, "density_runs": 1,
              "lanczos_steps": 16, "method": "auto"},
    choices={"method": ("auto", "func", "double_backward", "kept_graph")},
    quick={"images": 8, "top_k": 1, "max_iter": 3, "trace_iter": 3, "lanczos_steps": 3},
    tables=(Table("hessian", ("model", "residual", "quantity", "scope", "k", "value", "std_error", "iterations",
                              "converged", "images", "method", "tol", "params_in_scope", "hvps")),
            Table("hessian_density", ("model", "residual", "eigenvalue", "density", "sigma", "runs",
                                      "lanczos_steps", "images")),
            Table("hessian_comparison", ("depth", "plain", "residual", "plain_top_eigenvalue",
                                         "residual_top_eigenvalue", "top_smaller", "trace_smaller"))),
    combine=lambda t: {"hessian_comparison": compare_curvature(t["hessian"])} if "hessian" in t else {}))
