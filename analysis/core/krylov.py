"""Matrix-free algorithms on a symmetric operator given as a product function (a Hessian-vector product): top
eigenvalues by power iteration or by Lanczos, the trace by Hutchinson's estimator (deflated by a Krylov basis when
one is given), and the spectral density by stochastic Lanczos quadrature. Vectors are lists of tensors (one per
parameter). :mod:`analysis.analyses.hessian` applies them to the loss of a model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .common import Progress

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
                     tol: float = 1e-3, min_iter: int = 5, seed: int = 0, progress: Progress = None,
                     krylov: "Krylov | None" = None, target_se: float | None = None) -> list[dict]:
    """Hutchinson's trace estimate for the whole Hessian and (``scopes``: name -> tensor indices) for the
    diagonal block of each scope, from the same Rademacher samples.

    ``krylov`` (a Lanczos run's orthonormal basis Q and its products HQ): the estimate is deflated by it, as in
    Hutch++ (Meyer et al. 2021) with a Krylov basis in place of a sketch: tr(E_s H) = Σ_j (q_j)_s·(Hq_j)_s +
    E[g_sᵀ(Hg)_s] with g = (I - QQᵀ)v. The first sum is exact; the samples only see H off the subspace, where the
    largest eigenvalues no longer add to their variance. Unbiased for any orthonormal Q.
    Stops when the running mean changes by less than ``tol`` (relative) after ``min_iter`` samples, or, with
    ``target_se``, when the standard error of the whole trace is at most ``target_se``; at most ``max_iter``."""
    gen = torch.Generator().manual_seed(seed)
    scopes = {"all": list(range(len(template))), **(scopes or {})}
    basis, products = (krylov.basis, krylov.products) if krylov else ([], [])
    exact = {s: sum(_dot([q[i] for i in idx], [h[i] for i in idx]) for q, h in zip(basis, products))
             for s, idx in scopes.items()}
    samples: dict[str, list[float]] = {s: [] for s in scopes}
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        v = _rademacher_like(template, gen)
        if basis:
            v = _orthogonalize(v, basis)
        hv = hvp(v)
        for s, idx in scopes.items():
            samples[s].append(exact[s] + _dot([v[i] for i in idx], [hv[i] for i in idx]))
        a = samples["all"]
        if it >= min_iter:
            if target_se is not None:
                done = float(np.std(a, ddof=1)) / math.sqrt(it) <= target_se
            else:
                prev, cur = float(np.mean(a[:-1])), float(np.mean(a))
                done = abs(cur - prev) <= tol * (abs(cur) + 1e-12)
            if done:
                converged = True
                break
        if progress:
            progress(it / max_iter, f"trace: sample {it}, ≈ {np.mean(a):.4g}")
    rows = []
    for s, vals in samples.items():
        x = np.asarray(vals, dtype=np.float64)
        se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
        rows.append({"scope": s, "trace": float(x.mean()), "trace_std_error": se, "iterations": it,
                     "converged": converged, "deflated_by": len(basis)})
    return rows


@dataclass
class Krylov:
    """One Lanczos run: the orthonormal basis q_1..q_m, the products Hq_j, and the tridiagonal T = QᵀHQ (its
    diagonal ``alphas`` and off-diagonal ``betas``; ``betas[j]`` is the norm of the residual after step j + 1)."""
    basis: list[Vec]
    products: list[Vec]
    alphas: list[float]
    betas: list[float]

    def ritz(self, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of the leading ``steps`` x ``steps`` block of T (the tridiagonal of that many
        steps from the same start), ascending."""
        m = len(self.alphas) if steps is None else min(steps, len(self.alphas))
        b = self.betas[:m - 1]
        return np.linalg.eigh(np.diag(self.alphas[:m]) + np.diag(b, 1) + np.diag(b, -1))


def krylov_run(hvp: HVP, template: Vec, steps: int, seed: int = 0,
               stop: Callable[["Krylov"], bool] | None = None) -> Krylov:
    """Up to ``steps`` Lanczos steps with full reorthogonalisation from a normalised Rademacher start, ending early
    where ``stop(run)`` says so after a step, or where the residual vanishes (the basis spans an invariant
    subspace: its Ritz values are eigenvalues)."""
    gen = torch.Generator().manual_seed(seed)
    v = _normalize(_rademacher_like(template, gen))
    run = Krylov([], [], [], [])
    w_prev, beta = None, 0.0
    for _ in range(steps):
        run.basis.append(v)
        hv = hvp(v)
        run.products.append(hv)
        alpha = _dot(hv, v)
        w = _axpy(-alpha, v, hv)
        if w_prev is not None:
            w = _axpy(-beta, w_prev, w)
        w = _orthogonalize(w, run.basis)
        run.alphas.append(alpha)
        beta = _norm(w)
        run.betas.append(beta)
        if beta < 1e-10 or (stop is not None and stop(run)):
            break
        w_prev, v = v, _scale(1.0 / beta, w)
    return run


def lanczos(hvp: HVP, template: Vec, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps with full reorthogonalisation from a Rademacher start: (Ritz values, weights τ²)."""
    evals, evecs = krylov_run(hvp, template, steps, seed).ritz()
    return evals, evecs[0, :] ** 2


def _top_by_magnitude(evals: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-np.abs(evals), kind="stable")[:k]


def lanczos_eigenvalues(hvp: HVP, template: Vec, k: int = 1, max_iter: int = 100, tol: float = 1e-3,
                        seed: int = 0, min_steps: int = 0, progress: Progress = None) -> tuple[list[dict], Krylov]:
    """The top-k eigenvalues (largest magnitude first) as Ritz values of one Lanczos run, stopped when each of the
    k changes by less than ``tol`` (relative) from one step to the next (after at least k + 1 and ``min_steps``
    steps) or after ``max(max_iter, min_steps)`` steps. Lanczos reaches a converged top eigenvalue in far fewer
    products than power iteration where the top eigenvalues lie close together (its error falls with the Chebyshev
    rate of the gap, power iteration's with the ratio λ₂/λ₁). Returns the rows of :func:`top_eigenvalues` (the
    vector is the Ritz vector) and the run, whose basis deflates the trace."""
    history: list[np.ndarray] = []
    cap = max(max_iter, min_steps)

    def stop(run: Krylov) -> bool:
        evals = run.ritz()[0]
        history.append(evals[_top_by_magnitude(evals, k)])
        j = len(run.alphas)
        if progress:
            progress(j / cap, f"Lanczos step {j}, λ₁ ≈ {history[-1][0]:.4g}")
        return j >= max(k + 1, min_steps) and _agree(history, k, tol)

    run = krylov_run(hvp, template, cap, seed=seed, stop=stop)
    evals, evecs = run.ritz()
    converged = run.betas[-1] < 1e-10 or _agree(history, k, tol)
    out = []
    for rank, i in enumerate(_top_by_magnitude(evals, k)):
        vec = [torch.zeros_like(t) for t in template]
        for c, q in zip(evecs[:, i], run.basis):
            vec = _axpy(float(c), q, vec)
        out.append({"k": rank + 1, "eigenvalue": float(evals[i]), "iterations": len(run.alphas),
                    "converged": bool(converged), "vector": _normalize(vec)})
    return out, run


def _agree(history: list[np.ndarray], k: int, tol: float) -> bool:
    """Whether the last two entries of ``history`` (the top-k Ritz values after each step) agree to ``tol``."""
    return len(history) > 1 and len(history[-2]) == len(history[-1]) == k and bool(
        np.all(np.abs(history[-1] - history[-2]) <= tol * (np.abs(history[-1]) + 1e-12)))


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
