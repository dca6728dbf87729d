"""How much of the input image each block's features still let one recover, plain against residual.

"The identity path keeps the image's information, so layer l+1 holds more than layer l" (a study note) cannot be
measured as stated: a deterministic layer cannot add information about its input (the data-processing inequality),
so what each point holds about the image can only shrink with depth. What is measured is a lower bound on what it
keeps: a linear map (ridge regression) from the point's features, average-pooled to 4 x 4 positions per channel
(C·16 values), to the 3,072 values of the normalised input image, fitted on ``train_images`` training images and
scored on the test sample as R² = 1 − Σ (x − x̂)² / Σ (x − x̄)² over every value of every image (x̄: the training
images' mean image). Its 95 % interval is a percentile bootstrap over the test images (2,000 resamples). The test
images' features come from :func:`analysis.analyses._features.test_points` (one pass shared with the readouts, or
streamed for large samples); per point, the fitted map ((C·16 + 1) x 3,072 float32 values) and one squared error per
test image are kept.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.stats import resample_counts
from ..engine.registry import Analysis, Context, Table, register
from ._features import point_stage, test_points, train_features
from .readout import design, ridge_fit, ridge_predict, ridge_system

RIDGE = 1e-2  # the ridge penalty, relative to the number of training images


def r2_intervals(sse: Sequence[np.ndarray], sst: np.ndarray, seed: int = 0, resamples: int = 2000
                 ) -> list[tuple[float, float, float]]:
    """(R², low, high) per point from each point's per-image squared errors (``sse[j]``) and the images' squared
    deviations from the mean image: R² = 1 − Σsse/Σsst, with a percentile bootstrap over the images. Every point is
    resampled with the same draws (the seed's), so one matrix product of their counts gives every point's resampled
    sums (:func:`~analysis.core.stats.resample_counts`; the same numbers as summing each resample, to float64
    rounding)."""
    errs = np.stack([np.asarray(e, dtype=np.float64) for e in sse])  # points x images
    counts = resample_counts(len(sst), resamples, seed)
    boot = 1.0 - (counts @ errs.T) / (counts @ sst)[:, None]  # resamples x points
    r2 = 1.0 - errs.sum(1) / sst.sum()
    lo, hi = np.quantile(boot, 0.025, axis=0), np.quantile(boot, 0.975, axis=0)
    return [(float(r), float(a), float(b)) for r, a, b in zip(r2, lo, hi)]


def r2_interval(sse: np.ndarray, sst: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple[float, float, float]:
    """:func:`r2_intervals` for one point."""
    return r2_intervals([sse], sst, seed, resamples)[0]


class PixelMap:
    """The ridge map from one point's features to the pixels, fitted on training images; :meth:`score` gives each
    test image's squared error and its squared deviation from the training images' mean image.

    The map W = A⁻¹·zᵀP (A = zᵀz + ridge, P the training pixels) has 3,072 columns. With fewer test images than
    that (``test_images``), solving for W costs more than solving for the test images' side: a test chunk's
    prediction z_t·W is computed as (z_t·A⁻¹)·(zᵀP), a Cholesky solve with one right-hand side per test image
    instead of one per pixel (the same numbers to float rounding; what is kept per point is zᵀP instead of W, the
    same size)."""

    def __init__(self, train_x: torch.Tensor, train_pixels: torch.Tensor, test_images: int | None = None,
                 mean_image: torch.Tensor | None = None) -> None:
        # the training images' mean image (float64), the same for every point: given once by the caller, or computed
        self.mean_image = train_pixels.double().mean(0) if mean_image is None else mean_image
        self.chol = None
        if test_images is not None and test_images < train_pixels.shape[1]:
            z, a, self.mean, self.std = ridge_system(train_x, RIDGE * len(train_x))
            self.chol = torch.linalg.cholesky(a)
            self.w = z.float().T @ train_pixels.float()  # zᵀP, (d + 1) x 3072
            return
        w, self.mean, self.std = ridge_fit(train_x, train_pixels, RIDGE * len(train_x), rhs_float32=True)
        self.w = w.float()  # (d + 1) x 3072: what is kept per point, whatever the number of test images

    def score(self, x: torch.Tensor, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.autocast(x.device.type, enabled=False):  # float32 as stated, also inside a stream's bf16 autocast
            if self.chol is None:
                pred = ridge_predict(x, self.w, self.mean, self.std).double()  # float32 map, float64 errors
            else:
                side = torch.cholesky_solve(design(x, self.mean, self.std, torch.float64).T, self.chol).T  # z_t·A⁻¹
                pred = (side.float() @ self.w).double()
        target = pixels.double()
        return (((target - pred) ** 2).sum(1).numpy(), ((target - self.mean_image) ** 2).sum(1).numpy())


def recovery_r2(train_x: torch.Tensor, train_pixels: torch.Tensor, test_x: torch.Tensor, test_pixels: torch.Tensor,
                seed: int = 0) -> tuple[float, float, float]:
    """(R², low, high) of the ridge regression from features to pixels (module docstring).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> px = torch.randn(200, 12, generator=g)
        >>> r2, lo, hi = recovery_r2(px[:150], px[:150], px[150:], px[150:])  # the pixels themselves as features
        >>> r2 > 0.99
        True
    """
    return r2_interval(*PixelMap(train_x, train_pixels, len(test_x)).score(test_x, test_pixels), seed=seed)


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    b = ctx.sample()
    train = train_features(ctx, ctx.params["train_images"])
    maps, mean_image = [], train.pixels.double().mean(0)
    for j in range(len(train.names)):
        maps.append(PixelMap(train.points[j], train.pixels, test_images=len(b), mean_image=mean_image))
        ctx.tick(0.5 * (j + 1) / len(train.names), f"input recovery of {ctx.name}: map {j + 1} of {len(train.names)} fitted")
    sse = [np.zeros(len(b)) for _ in maps]
    sst = np.zeros(len(b))
    for ch in test_points(ctx, progress=lambda f, m: ctx.tick(0.5 + 0.5 * f, m), what=f"input recovery of {ctx.name}"):
        px = b.x[ch.sl].flatten(1).float().cpu()
        for j, pooled in enumerate(ch.pooled):
            e, t = maps[j].score(pooled, px)
            sse[j][ch.sl] = e
            sst[ch.sl] = t
    rows = []
    for j, (name, (r2, lo, hi)) in enumerate(zip(train.names, r2_intervals(sse, sst, seed=ctx.seed))):
        rows.append({"model": ctx.name, "residual": ctx.model.residual, "point": name, "point_index": j - 1,
                     "stage": point_stage(name), "r2": r2, "r2_low": lo, "r2_high": hi,
                     "dims": int(train.points[j].shape[1]), "images": len(b), "train_images": len(train.labels)})
    return {"input_recovery": pd.DataFrame(rows)}


def findings(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for m, g in df.groupby("model", sort=False):
        g = g.sort_values("point_index")
        first, last = g.iloc[0], g.iloc[-1]
        rises = int((g["r2"].diff() > 0).sum())
        rows.append({"topic": "recovery", "model": m, "sentence": (
            f"{m}: R² {first['r2']:.3f} from the stem's output, {last['r2']:.3f} from the last block's "
            f"(95 % intervals {first['r2_low']:.3f}-{first['r2_high']:.3f} and {last['r2_low']:.3f}-{last['r2_high']:.3f}); "
            f"it rises from one point to the next {rises} time(s) of {len(g) - 1}.")})
    return pd.DataFrame(rows, columns=["topic", "model", "sentence"])


def _combine(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {"recovery_findings": findings(tables["input_recovery"])} if "input_recovery" in tables else {}


register(Analysis(
    name="recovery", title="Input recovery: how much of the image each block's features let a linear map restore",
    run=_run, page="pages/10_Depth.py", order=39, defaults={"train_images": 2000}, quick={"train_images": 24},
    combine=_combine,
    tables=(Table("input_recovery", ("model", "residual", "point", "point_index", "stage", "r2", "r2_low",
                                     "r2_high", "dims", "images", "train_images")),
            Table("recovery_findings", ("topic", "model", "sentence")))))
