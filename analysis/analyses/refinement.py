"""Iterative refinement (Jastrzebski et al. 2018, "Residual connections encourage iterative inference"): does each
block move its features along the negative gradient of the loss, as one step of gradient descent would?

For block i with input h and output y, the block's *change* is what it adds to its skip path: F(h), the branch
output, in a residual net; y − s(h) in a plain net (s: the identity, or option A's subsample-and-pad where the
shape changes), which is the same quantity for a residual net whose unit has nothing after the addition. Per test
image n, the cosine between that change and −∂loss_n/∂y (the gradient at the block's output: the point the change
moves) is measured, with the rest of the net run as usual; ``cosine`` is its mean over images. Positive: the block
steps downhill. Float32, eval-mode BN; the model is only read (autograd builds a graph through it, nothing more).
One backward pass per chunk of images gives the gradient at every block's output.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from ..core.common import Batch, Progress, chunked, model_device
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register


def refinement(model: CifarResNet, batch: Batch, model_name: str, chunk: int = 64,
               progress: Progress = None) -> pd.DataFrame:
    """One row per block: the mean over images of cos(change, −∂loss/∂y) (module docstring).

    Example:
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()
        >>> r = refinement(m, random_sample(8, 0, torch.device("cpu")), "resnet8")
        >>> len(r), bool(r["cosine"].between(-1, 1).all())
        (3, True)
    """
    dev = model_device(model)
    n_blocks, n_total = model.num_blocks, len(batch)
    sums = torch.zeros(n_blocks, dtype=torch.float64)
    sq = torch.zeros(n_blocks, dtype=torch.float64)

    def run(sl: slice) -> None:
        x, y = batch.x[sl].to(dev).float(), batch.y[sl].to(dev)
        with torch.no_grad():
            h = model.stem_forward(x)
        h.requires_grad_(True)  # a graph through every block: one backward pass gives ∂loss/∂y at each output
        outs, changes = [], []
        for _, blk in model.blocks():
            if model.residual:  # Block.forward, with F(h) kept: the change is the branch the block adds
                f = blk.branch(h)
                h = blk.merge(f, blk.shortcut(h), blk.default_lam)
                changes.append(f.detach())
            else:
                skip = blk.skip_path(h.detach())  # the identity returns its input: detached, or the change keeps a graph
                h = blk(h)
                changes.append(h.detach() - skip)
            outs.append(h)
        loss = F.cross_entropy(model.head(h), y, reduction="sum")
        grads = torch.autograd.grad(loss, outs)
        for i, (change, g) in enumerate(zip(changes, grads)):
            cos = F.cosine_similarity(change.flatten(1).double(), -g.flatten(1).double(), dim=1, eps=1e-30)
            sums[i] += cos.sum().cpu()
            sq[i] += (cos * cos).sum().cpu()
        if progress:
            progress(min(1.0, sl.stop / n_total), f"iterative refinement of {model_name}")

    chunked(run, n_total, chunk)
    rows = []
    for info in model.block_info:
        i = info.index
        mean = float(sums[i] / n_total)
        var = max(0.0, float(sq[i] / n_total) - mean * mean) * n_total / max(1, n_total - 1)
        rows.append({"model": model_name, "residual": model.residual, "block": info.name, "block_index": i,
                     "stage": info.stage, "downsample": info.downsample, "cosine": mean, "cosine_std": var ** 0.5,
                     "images": n_total, "change": "branch output F(h)" if model.residual else "block change y − s(h)"})
    return pd.DataFrame(rows)


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    return {"refinement": refinement(ctx.model, ctx.sample(ctx.params["images"]), ctx.name, progress=ctx.progress)}


def findings(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for m, g in df.groupby("model", sort=False):
        pos = int((g["cosine"] > 0).sum())
        rows.append({"topic": "refinement", "model": m, "sentence": (
            f"{m}: the mean cosine between a block's change and −∂loss/∂output is {g['cosine'].mean():+.3f} over "
            f"its {len(g)} blocks ({pos} positive: stepping downhill), from {g['cosine'].min():+.3f} to "
            f"{g['cosine'].max():+.3f}.")})
    return pd.DataFrame(rows, columns=["topic", "model", "sentence"])


def _combine(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {"refinement_findings": findings(tables["refinement"])} if "refinement" in tables else {}


register(Analysis(
    name="refinement", title="Iterative refinement: the cosine between each block's change and −∂loss/∂output",
    run=_run, page="pages/10_Depth.py", order=37, defaults={"images": 128}, quick={"images": 6},
    combine=_combine,
    tables=(Table("refinement", ("model", "residual", "block", "block_index", "stage", "downsample", "cosine",
                                 "cosine_std", "images", "change")),
            Table("refinement_findings", ("topic", "model", "sentence")))))
