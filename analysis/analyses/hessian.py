"""Curvature of the loss: the Hessian w.r.t. all weights, plain vs residual (PyHessian's measurements).

What is measured (float32 on a private copy, eval-mode BN with the running statistics, no autocast):

* L(θ) = mean cross-entropy over the sample; H = ∇²L(θ) w.r.t. every parameter (conv and linear weights,
  BN scales and shifts, the linear bias). Hessian-vector products (HVPs) come from ``torch.func``
  (forward-over-reverse: the jvp of the gradient), from double backward (``method="double_backward"``), or
  from the gradient's graph built once and kept (``"kept_graph"``, what ``"auto"`` uses when the sample fits in one
  chunk); the benchmark compares them. The sample is cut into chunks; the chunks' HVPs are averaged with
  weights chunk/N, so the result is the HVP of the whole sample's mean loss.
* The BN layers of the copy are written as the affine maps they are in eval mode (``EvalBatchNorm``: the same
  function, cheaper second derivatives).
* ``eigenvalue`` (``eigen="lanczos"``, the default): the top-k eigenvalues (largest magnitude) as Ritz values of one
  Lanczos run with full reorthogonalisation from a Rademacher start, stopped when each of the k changes by less
  than ``tol`` (relative) from one step to the next, or after max(``max_iter``, ``lanczos_steps``) steps.
  ``eigen="power"``: power iteration with deflation (PyHessian's algorithm), stopped when the Rayleigh quotient
  changes by less than ``tol`` or after ``max_iter`` HVPs per eigenvalue.
* ``trace``: Hutchinson's estimator E[vᵀHv] with Rademacher v, with its standard error, stopped when the
  running mean changes by less than ``tol`` (relative) or after ``trace_iter`` samples. One HVP per sample
  gives every scope's trace at once: v_sᵀ(Hv)_s is an unbiased estimate of the trace of the diagonal block
  of scope s (stem, stage1..3, head), because v's entries are independent. With Lanczos, the estimate is deflated
  by the run's basis Q: exact on the Krylov subspace (Σ q_jᵀHq_j from the products already taken), sampled with
  v projected off it, which removes the top eigenvalues' share of the variance (``analysis.core.krylov``).
* density: stochastic Lanczos quadrature (Ghorbani et al. 2019, as in PyHessian): ``density_runs``
  Lanczos runs of ``lanczos_steps`` steps with full reorthogonalisation from Rademacher starts (with Lanczos
  eigenvalues, the first run is the leading ``lanczos_steps`` steps of the eigenvalue run: same start); the Ritz
  values with weights τ² (the squared first components of the eigenvectors of the tridiagonal matrix),
  smoothed by a Gaussian of width ``sigma`` on a grid.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp

from ..core.blocks import with_eval_batchnorm
from ..core.krylov import (HVP, Vec, density_grid, hutchinson_trace, lanczos, lanczos_eigenvalues,  # noqa: F401
                           top_eigenvalues)
from ..core.common import Batch, Progress, model_device, private_copy
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register


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
    model = with_eval_batchnorm(private_copy(model))  # eval mode, float32, seen by no other thread
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
                     progress: Progress = None, data_parallel: bool = False,
                     eigen: str = "lanczos") -> tuple[pd.DataFrame, pd.DataFrame, Vec]:
    """(hessian rows, density rows, the top eigenvector) for one model; see the module docstring.
    ``eigen``: "lanczos" (one Lanczos run gives the top eigenvalues, the first density run and the basis that
    deflates the trace) or "power" (power iteration with deflation, plain Hutchinson, separate density runs: the
    algorithms of PyHessian, kept for comparison).
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
    if eigen not in ("lanczos", "power"):
        raise ValueError(f"eigen must be 'lanczos' or 'power', not {eigen!r}")
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
    lanczos_first = eigen == "lanczos"
    eig_steps = max(max_iter, lanczos_steps if density_runs else 0) if lanczos_first else top_k * max_iter
    total_steps = eig_steps + trace_iter + (density_runs - lanczos_first) * lanczos_steps

    def sub(offset: int, span: int):
        if not progress:
            return None
        return lambda f, msg: progress(min(1.0, (offset + f * span) / total_steps), f"{model_name}: {msg}")

    base = {"model": model_name, "residual": model.residual, "images": len(batch), "method": method, "tol": tol}
    nodes, weights = [], []
    run = None
    if lanczos_first:
        eig, run = lanczos_eigenvalues(counting, template, k=top_k, max_iter=max_iter, tol=tol, seed=seed + 100,
                                       min_steps=lanczos_steps if density_runs else 0, progress=sub(0, eig_steps))
        if density_runs:  # the run's first lanczos_steps steps are the first density run (same start, seed + 100)
            evals, evecs = run.ritz(lanczos_steps)
            nodes.append(evals)
            weights.append(evecs[0, :] ** 2)
        algorithm = f"Lanczos, {len(run.alphas)} steps"
    else:
        eig = top_eigenvalues(counting, template, k=top_k, max_iter=max_iter, tol=tol, seed=seed,
                              progress=sub(0, eig_steps))
        algorithm = "power iteration with deflation"
    rows = []
    for e in eig:
        rows.append({**base, "quantity": "eigenvalue", "scope": "all", "k": e["k"], "value": e["eigenvalue"],
                     "std_error": float("nan"), "iterations": e["iterations"], "converged": e["converged"],
                     "params_in_scope": sum(sizes.values()), "algorithm": algorithm})
    trace = hutchinson_trace(counting, template, scopes={s: idx for s, idx in scopes.items()}, max_iter=trace_iter,
                             tol=tol, seed=seed + 1, progress=sub(eig_steps, trace_iter),
                             krylov=run) if trace_iter else []
    for t in trace:
        rows.append({**base, "quantity": "trace", "scope": t["scope"], "k": 0, "value": t["trace"],
                     "std_error": t["trace_std_error"], "iterations": t["iterations"], "converged": t["converged"],
                     "params_in_scope": sizes.get(t["scope"], sum(sizes.values())),
                     "algorithm": "Hutchinson" + (f", deflated by {t['deflated_by']} Lanczos vectors"
                                                  if t["deflated_by"] else "")})
    for r in range(len(nodes), density_runs):
        nd, wt = lanczos(counting, template, lanczos_steps, seed=seed + 100 + r)
        nodes.append(nd)
        weights.append(wt)
        if progress:
            progress(min(1.0, (eig_steps + trace_iter + (r + 1 - lanczos_first) * lanczos_steps) / total_steps),
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
    e = lanczos_eigenvalues(hvp, template, k=1, max_iter=max_iter, tol=tol, seed=seed, progress=progress)[0][0]
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


def hvp_budget(top_k: int, max_iter: int, trace_iter: int, lanczos_steps: int, density_runs: int = 1,
               eigen: str = "lanczos", **_) -> int:
    """The most Hessian-vector products :func:`hessian_analysis` takes for one model with these settings."""
    if eigen == "lanczos":
        return max(max_iter, lanczos_steps if density_runs else 0) + trace_iter + lanczos_steps * max(density_runs - 1, 0)
    return top_k * max_iter + trace_iter + lanczos_steps * density_runs


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    if p["top_k"] < 1:
        raise ValueError("hessian: top_k must be at least 1")
    df, dens, _ = hessian_analysis(ctx.model, ctx.sample(p["images"]), ctx.name, top_k=p["top_k"],
                                   max_iter=p["max_iter"], tol=p["tol"], trace_iter=p["trace_iter"],
                                   density_runs=p["density_runs"], lanczos_steps=p["lanczos_steps"],
                                   method=p["method"], seed=ctx.seed, progress=ctx.progress, eigen=p["eigen"])
    return {"hessian": df, "hessian_density": dens} if len(dens) else {"hessian": df}


register(Analysis(
    name="hessian", title="Curvature: top Hessian eigenvalues, trace and spectral density", run=_run,
    work=lambda p: hvp_budget(**p),
    page="pages/8_Curvature.py", order=60,
    defaults={"images": 100, "top_k": 2, "max_iter": 20, "tol": 1e-2, "trace_iter": 20, "density_runs": 1,
              "lanczos_steps": 16, "method": "auto", "eigen": "lanczos"},
    choices={"method": ("auto", "func", "double_backward", "kept_graph"), "eigen": ("lanczos", "power")},
    quick={"images": 8, "top_k": 1, "max_iter": 3, "trace_iter": 3, "lanczos_steps": 3},
    tables=(Table("hessian", ("model", "residual", "quantity", "scope", "k", "value", "std_error", "iterations",
                              "converged", "images", "method", "tol", "params_in_scope", "algorithm", "hvps")),
            Table("hessian_density", ("model", "residual", "eigenvalue", "density", "sigma", "runs",
                                      "lanczos_steps", "images")),
            Table("hessian_comparison", ("depth", "plain", "residual", "plain_top_eigenvalue",
                                         "residual_top_eigenvalue", "top_smaller", "trace_smaller"))),
    combine=lambda t: {"hessian_comparison": compare_curvature(t["hessian"])} if "hessian" in t else {}))
