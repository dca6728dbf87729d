"""How alike the blocks' representations are: linear CKA between every pair of readout points (Kornblith et al.
2019), with the unbiased minibatch estimator of Nguyen, Raghu and Kornblith (2021).

For features X (n x p) and Y (n x q) of the same n images, K = XXᵀ and L = YYᵀ; HSIC₁ is the unbiased estimator of
Song et al. (2012), computed on each minibatch of ``batch`` test images and averaged over the minibatches:

    CKA(X, Y) = mean HSIC₁(K, L) / sqrt(mean HSIC₁(K, K) · mean HSIC₁(L, L)).

The features are each point's whole activation (stem output, then each block's output), flattened. Only one
minibatch's Gram matrices are held at a time, so memory does not grow with the number of images. At minibatches of
:data:`~analysis.analyses._features.CHUNK` images on a sample whose features are kept
(:func:`~analysis.analyses._features.keeps_test_points`: the sidebar's 500 images), each minibatch's HSIC comes from
the test pass that the readouts and input recovery share (:func:`~analysis.analyses._features.test_points`): one
forward pass of the test images for the three analyses, the same numbers. The biased
estimator (the centred HSIC of the original paper) is kept for comparison: on independent features it is clearly
above 0 when the dimension is large against n, where the unbiased one is near 0 (``tests/analyses/test_depth.py``).
"""

from __future__ import annotations

import pandas as pd
import torch

from ..core.common import autocast, model_device
from ..engine.registry import Analysis, Context, Table, register
from ._features import CHUNK, features_model, keeps_test_points, test_points
from ._hsic import centred_gram, gram, hsic_biased, hsic_matrices, hsic_unbiased


def linear_cka(x: torch.Tensor, y: torch.Tensor, unbiased: bool = True) -> float:
    """Linear CKA of two feature matrices of the same examples (one minibatch).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(64, 20, generator=g, dtype=torch.float64)
        >>> q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
        >>> round(linear_cka(x, 3.0 * x @ q), 12)  # invariant to an orthogonal map and an isotropic scale
        1.0
    """
    k, l = gram(x), gram(y)
    h = hsic_unbiased if unbiased else hsic_biased
    return float(h(k, l) / torch.sqrt(h(k, k) * h(l, l)))


@torch.no_grad()
def cka_matrix(model, x: torch.Tensor, batch: int = 250, progress=None, kernel=centred_gram
               ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(point names, unbiased minibatch CKA matrix, biased minibatch CKA matrix) over the readout points of
    ``model`` for normalised images ``x`` (N x 3 x 32 x 32), in minibatches of ``batch`` (the last one, if under 4
    images, is left out). ``kernel``: each point's float64 kernel from its activation (:func:`centred_gram`; the
    benchmark compares :func:`gram`)."""
    dev = model_device(model)
    names = ["stem"] + model.block_names()
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    starts = [s for s in range(0, len(x), batch) if min(len(x), s + batch) - s >= 4]
    for j, s in enumerate(starts):
        xb = x[s:s + batch].to(dev).contiguous(memory_format=torch.channels_last)
        with autocast(dev, dev.type == "cpu"):
            inputs, last = model.block_inputs(xb)
        pairs.append(hsic_matrices([kernel(h).cpu() for h in inputs + [last]]))
        if progress:
            progress((j + 1) / len(starts), f"CKA: minibatch {j + 1} of {len(starts)}")
    return (names, *cka_from_sums(pairs))


def cka_from_sums(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(unbiased, biased) CKA matrices from each minibatch's (unbiased, biased) HSIC matrices: each HSIC averaged
    over the minibatches (summed here: the mean's scale cancels), then divided by the square roots of the
    diagonal's."""
    out = []
    for u in (0, 1):
        total = sum(p[u] for p in pairs)
        d = torch.sqrt(torch.diagonal(total).clamp_min(1e-300))
        out.append(total / (d[:, None] * d[None, :]))
    return out[0], out[1]


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    b = ctx.sample()
    bs = ctx.params["batch"]
    if bs == CHUNK and keeps_test_points(ctx):  # each minibatch's HSIC from the pass shared with the readouts
        names = ["stem"] + ctx.model.block_names()
        unb, bia = cka_from_sums([ch.hsic for ch in test_points(ctx, progress=ctx.progress, what="CKA")
                                  if ch.hsic is not None])
    else:
        names, unb, bia = cka_matrix(features_model(ctx), b.x, batch=bs, progress=ctx.progress)
    rows = [{"model": ctx.name, "residual": ctx.model.residual, "point_a": a, "point_b": c, "index_a": i - 1,
             "index_b": j - 1, "cka": float(unb[i, j]), "cka_biased": float(bia[i, j]), "images": len(b),
             "batch": min(bs, len(b)), "estimator": "linear CKA, unbiased HSIC averaged over minibatches "
                                                     "(Nguyen et al. 2021)"}
            for i, a in enumerate(names) for j, c in enumerate(names)]
    return {"cka": pd.DataFrame(rows)}


def findings(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for m, g in df.groupby("model", sort=False):
        nxt = g[g["index_b"] == g["index_a"] + 1]
        far = g[(g["index_a"] == -1) & (g["index_b"] == g["index_b"].max())]
        rows.append({"topic": "cka", "model": m, "sentence": (
            f"{m}: CKA between consecutive points {nxt['cka'].mean():.3f} on average (from {nxt['cka'].min():.3f} "
            f"to {nxt['cka'].max():.3f}); between the stem's output and the last block's "
            f"{float(far['cka'].iloc[0]) if len(far) else float('nan'):.3f}.")})
    return pd.DataFrame(rows, columns=["topic", "model", "sentence"])


def _combine(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {"cka_findings": findings(tables["cka"])} if "cka" in tables else {}


register(Analysis(
    name="cka", title="Block x block similarity of representations (linear CKA, unbiased minibatch estimator)",
    run=_run, page="pages/10_Depth.py", order=38, defaults={"batch": 250}, quick={"batch": 6}, combine=_combine,
    tables=(Table("cka", ("model", "residual", "point_a", "point_b", "index_a", "index_b", "cka", "cka_biased",
                          "images", "batch", "estimator")),
            Table("cka_findings", ("topic", "model", "sentence")))))
