"""What each block's features already tell about the class: the net's own head read early, and a linear probe.

* ``head`` (Jastrzebski et al. 2018; Veit et al. 2016's lesions): after block i, the rest of the net is replaced by
  its skip path (every later block deleted) and the net's own head reads the result. In a residual net the skip
  path is the identity (option A's pad at the two downsampling blocks), so this asks whether the head can already
  read block i's features; in a plain net the same operation keeps the features as they are, and a head trained on
  the last block's features reads them.
* ``probe`` (Alain & Bengio 2016): a linear classifier fitted on the global-average-pooled features of the point
  (C values) on ``train_images`` training images and scored on the test sample: a least-squares fit to the one-hot
  labels with a small ridge penalty (a ridge classifier: closed form, no randomness), features standardised with
  the training images' mean and std.

Top-1 error in percent with its 95 % Wilson interval. Eval-mode BN, bfloat16 autocast on the CPU on a folded and fused
copy (:func:`analysis.analyses._features.features_model`; float32 on a GPU) for the forward passes, float64 for the
probe's fit. The test images go through the net one chunk at a time
(:func:`analysis.analyses._features.test_points`, a pass shared with input recovery and CKA); the probe's training
features are kept (``train_images`` of them).
"""

from __future__ import annotations

import pandas as pd
import torch

from ..core.common import count_wrong, error_pct
from ..core.stats import wilson
from ..engine.registry import Analysis, Context, Table, register
from ._features import Features, features_model, global_pool, point_stage, test_points, train_features

RIDGE = 1e-3  # the ridge penalty, relative to the number of training images


def ridge_system(x: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, A, mean, std) in float64: ``x`` (N x d) standardised with a bias column (z, N x (d + 1)) and the ridge
    normal matrix A = zᵀz + alpha·I (the bias not penalised)."""
    x = x.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    z = design(x, mean, std, torch.float64)
    reg = alpha * torch.eye(z.shape[1], dtype=torch.float64)
    reg[-1, -1] = 0.0  # the bias is not penalised
    return z, z.T @ z + reg, mean, std


def design(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` standardised in float64 with ``mean`` and ``std``, in ``dtype``, with a bias column of ones."""
    z = ((x.double() - mean) / std).to(dtype)
    return torch.cat([z, torch.ones(len(x), 1, dtype=dtype)], 1)


def ridge_fit(x: torch.Tensor, targets: torch.Tensor, alpha: float, rhs_float32: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights, mean, std): the least-squares map from standardised ``x`` (N x d, with a bias) to ``targets``
    (N x k), with ridge penalty ``alpha`` (float64). ``rhs_float32``: the product zᵀ·targets in float32 (for
    thousands of targets, e.g. every pixel, it is most of the work; its relative error, about 1e-6, is far below
    what the fit is read to), the normal equations and their solution still in float64."""
    z, a, mean, std = ridge_system(x, alpha)
    rhs = (z.float().T @ targets.float()).double() if rhs_float32 else z.T @ targets.double()
    return torch.linalg.solve(a, rhs), mean, std


def ridge_predict(x: torch.Tensor, w: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The fitted map applied to ``x``, standardised in float64 and multiplied in the map's own dtype."""
    return design(x, mean, std, w.dtype) @ w


def probe_error(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                classes: int = 10) -> float:
    """Top-1 test error (%) of a ridge classifier fitted on (``train_x``, ``train_y``).

    Example:
        >>> y = torch.arange(40) % 10
        >>> probe_error(torch.eye(10)[y], y, torch.eye(10)[y], y)  # features equal to the one-hot labels
        0.0
    """
    onehot = torch.nn.functional.one_hot(train_y.long(), classes).double()
    w, mean, std = ridge_fit(train_x, onehot, RIDGE * len(train_x))
    pred = ridge_predict(test_x, w, mean, std).argmax(1)
    return 100.0 * float((pred != test_y.long()).double().mean())


def readout_table(ctx: Context, train_images: int) -> pd.DataFrame:
    """Both readouts at every point: probes fitted on the training images' features, then the test sample's points
    (:func:`~analysis.analyses._features.test_points`, shared with input recovery: per chunk, the head through the skip
    path and the pooled features the probe predicts from)."""
    model, n_blocks = features_model(ctx), ctx.model.num_blocks
    b = ctx.sample()
    train: Features = train_features(ctx, train_images)
    probes = []
    for j in range(len(train.names)):
        onehot = torch.nn.functional.one_hot(train.labels.long(), 10).double()
        probes.append(ridge_fit(train.pooled(j), onehot, RIDGE * len(train.labels)))
        ctx.tick(0.3 * (j + 1) / len(train.names), f"readouts of {ctx.name}: probe {j + 1} of {len(train.names)} fitted")
    wrong = {k: [0] * (n_blocks + 1) for k in ("head", "probe")}
    for ch in test_points(ctx, progress=lambda f, m: ctx.tick(0.3 + 0.7 * f, m), what=f"readouts of {ctx.name}"):
        y = b.y[ch.sl].cpu()
        for j, (pooled, head) in enumerate(zip(ch.pooled, ch.head)):
            wrong["head"][j] += count_wrong(head, y)  # every later block deleted: the skip path from point j, the head
            wrong["probe"][j] += int((ridge_predict(global_pool(pooled), *probes[j]).argmax(1) != y).sum())
    rows = []
    for j, name in enumerate(train.names):
        for kind in ("head", "probe"):
            k = wrong[kind][j]
            lo, hi = wilson(k, len(b))
            rows.append({"model": ctx.name, "residual": model.residual, "point": name, "point_index": j - 1,
                         "stage": point_stage(name), "readout": kind, "error_pct": error_pct(k, len(b)),
                         "error_low": lo, "error_high": hi, "images": len(b), "train_images": len(train.labels)})
    return pd.DataFrame(rows)


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    return {"readout": readout_table(ctx, ctx.params["train_images"])}


def stage_ends(df: pd.DataFrame) -> pd.DataFrame:
    """The rows at the last point of each stage (and the stem), per model and readout."""
    last = df.groupby(["model", "readout", "stage"])["point_index"].transform("max")
    return df[df["point_index"] == last].sort_values(["model", "readout", "point_index"])


def findings(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for m, g in stage_ends(df).groupby("model", sort=False):
        parts = []
        for kind, words in (("head", "the net's own head, read through the skip path"), ("probe", "a linear probe")):
            r = g[g["readout"] == kind]
            seq = ", ".join(f"{e:.1f} %" for e in r["error_pct"])
            parts.append(f"{words}: {seq}")
        rows.append({"topic": "readout", "model": m,
                     "sentence": f"{m}, test error after the stem and at the end of each stage, {'; '.join(parts)}."})
    return pd.DataFrame(rows, columns=["topic", "model", "sentence"])


def _combine(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {"readout_findings": findings(tables["readout"])} if "readout" in tables else {}

register(Analysis(
    name="readout", title="Readouts: the head read early through the skip path, and a linear probe per block",
    run=_run, page="pages/10_Depth.py", order=36, defaults={"train_images": 2000}, quick={"train_images": 24},
    combine=_combine,
    tables=(Table("readout", ("model", "residual", "point", "point_index", "stage", "readout", "error_pct",
                              "error_low", "error_high", "images", "train_images")),
            Table("readout_findings", ("topic", "model", "sentence")))))
