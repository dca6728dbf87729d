"""Gradient flow through depth, trained and at initialisation, with scaled shortcuts.

What is measured, for each block i (float32, no autocast: norms span many orders of magnitude):

* ``grad_input_l2``: the mean over images n of ||d loss_n / d x_i[n]||_2, where x_i[n] is block i's
  input for image n and loss_n that image's cross-entropy (the batch loss is a sum, so nothing is
  divided by the batch size).
* ``grad_weight_l2``: ||d L / d W||_2 over both 3x3 conv weights of the block (``grad_conv1_l2`` and
  ``grad_conv2_l2`` separately), where L is the mean cross-entropy over the whole sample.

BN runs as in a training step: batch statistics over batches of ``batch_size`` images (128, as in
training). That needs train mode, so the work is done on a private copy of the model: the model passed
in (a cached one, say) is never touched. ``state`` says whether the weights are the trained ones or a
fresh He initialisation made with ``seed``; ``lambda`` is the shortcut scale y = ReLU(F(x) + lambda*s(x)).
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from .common import Batch, chunked, model_device
from .models import CifarResNet

LAMBDAS = (0.0, 0.5, 0.9, 1.0, 1.1, 1.5)


def _private_train_copy(model: CifarResNet) -> CifarResNet:
    m = copy.deepcopy(model)
    m.train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = 0.0  # batch statistics are used; running ones stay as they were (in the copy)
    return m


def gradient_flow(model: CifarResNet, batch: Batch, model_name: str, weights: str, lam: float | None = None,
                  batch_size: int = 128, progress: Callable[[float, str], None] | None = None) -> pd.DataFrame:
    """One row per block: input-gradient and weight-gradient norms (see the module docstring)."""
    dev = model_device(model)
    m = _private_train_copy(model)
    convs = [(b.conv1.weight, b.conv2.weight) for b in m._blocks]
    n_blocks = m.num_blocks
    in_sum = torch.zeros(n_blocks, dtype=torch.float64)
    w_acc = [[torch.zeros_like(c1), torch.zeros_like(c2)] for c1, c2 in convs]
    n_total = len(batch)
    state = {"nonfinite": False, "bs": batch_size}

    def run(sl: slice) -> None:
        x = batch.x[sl].to(dev)
        y = batch.y[sl].to(dev)
        state["bs"] = min(state["bs"], sl.stop - sl.start) if sl.stop < n_total else state["bs"]
        h = m.stem_forward(x)
        inputs = []
        for i, blk in enumerate(m._blocks):
            inputs.append(h)
            h = blk(h, scale=lam)
        logits = m.head(h)
        loss_sum = F.cross_entropy(logits.float(), y, reduction="sum")
        params = [w for pair in convs for w in pair]
        grads = torch.autograd.grad(loss_sum, inputs + params)
        g_in, g_w = grads[:n_blocks], grads[n_blocks:]
        for i in range(n_blocks):
            norms = g_in[i].flatten(1).norm(dim=1).double()
            state["nonfinite"] |= not torch.isfinite(norms).all().item()
            in_sum[i] += norms.sum().cpu()
            w_acc[i][0] += g_w[2 * i]
            w_acc[i][1] += g_w[2 * i + 1]
        if progress:
            progress(min(1.0, sl.stop / n_total), f"gradients of {model_name} ({weights}, lambda={lam})")

    # On CUDA out-of-memory the batch is halved (and the bn column says which batch size was used).
    chunked(run, n_total, batch_size)
    nonfinite = state["nonfinite"]
    rows = []
    lam_v = (1.0 if m.residual else 0.0) if lam is None else float(lam)
    for i, info in enumerate(m.block_info):
        g1 = (w_acc[i][0] / n_total).norm().item()
        g2 = (w_acc[i][1] / n_total).norm().item()
        rows.append({"model": model_name, "residual": model.residual, "state": weights, "lambda": lam_v,
                     "block": info.name, "block_index": i, "stage": info.stage, "downsample": info.downsample,
                     "grad_input_l2": (in_sum[i] / n_total).item(), "grad_weight_l2": (g1 * g1 + g2 * g2) ** 0.5,
                     "grad_conv1_l2": g1, "grad_conv2_l2": g2, "images": n_total,
                     "bn": f"batch statistics, batches of {state['bs']}", "finite": not nonfinite})
    del m
    return pd.DataFrame(rows)


def lambda_sweep(init_model: CifarResNet, batch: Batch, model_name: str, lambdas: Sequence[float] = LAMBDAS,
                 batch_size: int = 128, progress: Callable[[float, str], None] | None = None) -> pd.DataFrame:
    """Gradient flow at initialisation for each shortcut scale lambda (lambda = 0 is the plain net)."""
    frames = []
    for j, lam in enumerate(lambdas):
        sub = None if progress is None else (lambda f, s, j=j: progress((j + f) / len(lambdas), s))
        frames.append(gradient_flow(init_model, batch, model_name, "init", lam=lam, batch_size=batch_size, progress=sub))
    return pd.concat(frames, ignore_index=True)
