"""Gradient flow through depth, trained and at initialisation, with scaled shortcuts.

What is measured, for each block i (float32, no autocast: norms span many orders of magnitude):

* ``grad_input_l2``: the mean over images n of ||d L / d x_i[n]||_2, where x_i[n] is block i's input for
  image n and L the sum of the batch's cross-entropies: the backward signal that reaches image n's row in a
  training step (nothing is divided by the batch size; with BN's batch statistics the other images' losses reach
  that row too, through the batch mean and variance); ``grad_input_l2_std`` is the standard deviation of that norm over the images
  (for the interval of the mean).
* ``grad_weight_l2``: ||d L / d W||_2 over every conv weight of the block's branch (both 3x3 convs; all three
  convs of a bottleneck block; ``grad_conv1_l2`` and ``grad_conv2_l2`` are the first two separately), where L is the
  mean cross-entropy over the whole sample.

With ``weight_grads=False`` only the input gradients are taken (the backward pass then skips the weights'
gradients) and the passes run in bfloat16 autocast with channels_last on the CPU: 2.2x faster, and the input-gradient
norms stay within 1 % of float32 at every block of plain20/56 and resnet20/56, trained and at initialisation (measured
on 256 test images; ``tests/analyses/test_analyses.py`` checks 2 %), while the weight-gradient norms, means over the
sample with much cancellation, would move by up to 14 %: they are left out (NaN) in that mode, and ``precision``
says which mode a row comes from. Pages that draw only input gradients ask for that mode.

BN runs as in a training step: batch statistics over batches of ``batch_size`` images (128, as in
training). That needs train mode, so the work is done on a private copy of the model: the model passed
in (a cached one, say) is never touched. ``state`` says whether the weights are the trained ones or a
fresh He initialisation made with ``seed``; ``lambda`` is the shortcut scale y = ReLU(F(x) + lambda*s(x))
(the net's own when none is given: 1 for residual nets, 0 for plain nets, lam for a ``scale{lam}`` net).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.blocks import fold_batchnorm
from ..core.common import Batch, Progress, autocast, chunked, model_device, private_copy, row_norms
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register

LAMBDAS = (0.0, 0.5, 0.9, 1.0, 1.1, 1.5)


def gradient_flow(model: CifarResNet, batch: Batch, model_name: str, weights: str, lam: float | None = None,
                  batch_size: int = 128, progress: Progress = None, weight_grads: bool = True) -> pd.DataFrame:
    """One row per block: input-gradient and weight-gradient norms (see the module docstring).

    Args:
        model: the net (only read: a private copy runs in train mode for BN's batch statistics).
        batch: normalised images (N x 3 x 32 x 32) and labels (N).
        model_name: the ``model`` column.
        weights: the ``state`` column, "trained" or "init".
        lam: the shortcut scale λ to run with (default None: the net's own).
        batch_size: images per BN batch (default 128, as in training; halved on CUDA out-of-memory).
        progress: an optional ``(fraction, message)`` callback.
        weight_grads: also the weights' gradients, in float32 (default); False: input gradients only, in
            bfloat16 autocast on the CPU (module docstring).

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> g = gradient_flow(m, b, "resnet8", weights="trained", batch_size=4)
        >>> list(g["block"]), bool((g["grad_input_l2"] > 0).all())
        (['stage1.block0', 'stage2.block0', 'stage3.block0'], True)
    """
    dev = model_device(model)
    m = private_copy(model, train_bn_batch_stats=True)
    fast = not weight_grads and dev.type == "cpu"
    if fast:
        m = m.to(memory_format=torch.channels_last)
    convs = [tuple(c.weight for c in b.convs) for _, b in m.blocks()]  # two, or three in a bottleneck block
    n_blocks = m.num_blocks
    in_sum = torch.zeros(n_blocks, dtype=torch.float64)
    in_sq = torch.zeros(n_blocks, dtype=torch.float64)  # for the spread over images
    w_acc = [[torch.zeros_like(c) for c in ws] for ws in convs]
    n_total = len(batch)
    state = {"nonfinite": False, "bs": batch_size}

    def run(sl: slice) -> None:
        x = batch.x[sl].to(dev)
        y = batch.y[sl].to(dev)
        state["bs"] = min(state["bs"], sl.stop - sl.start) if sl.stop < n_total else state["bs"]
        with autocast(dev, fast):
            h = m.stem_forward(x.contiguous(memory_format=torch.channels_last) if fast else x)
            inputs = []
            for _, blk in m.blocks():
                inputs.append(h)
                h = blk(h, scale=lam)
            logits = m.head(h)
        loss_sum = F.cross_entropy(logits.float(), y, reduction="sum")
        params = [w for pair in convs for w in pair] if weight_grads else []
        grads = torch.autograd.grad(loss_sum, inputs + params)
        g_in, g_w = grads[:n_blocks], list(grads[n_blocks:])
        for i in range(n_blocks):
            norms = row_norms(g_in[i]).double()
            state["nonfinite"] |= not torch.isfinite(norms).all().item()
            in_sum[i] += norms.sum().cpu()
            in_sq[i] += (norms * norms).sum().cpu()
            for acc in w_acc[i] if weight_grads else ():
                acc += g_w.pop(0)
        if progress:
            progress(min(1.0, sl.stop / n_total), f"gradients of {model_name} ({weights}, lambda={lam})")

    # On CUDA out-of-memory the batch is halved (and the bn column says which batch size was used).
    chunked(run, n_total, batch_size)
    nonfinite = state["nonfinite"]
    rows = []
    lam_v = m.block(0).default_lam if lam is None else float(lam)
    for i, info in enumerate(m.block_info):
        gs = [(acc / n_total).norm().item() if weight_grads else float("nan") for acc in w_acc[i]]
        g1, g2 = gs[0], gs[1]
        rows.append({"model": model_name, "residual": model.residual, "state": weights, "lambda": lam_v,
                     "block": info.name, "block_index": i, "stage": info.stage, "downsample": info.downsample,
                     "grad_input_l2": (in_sum[i] / n_total).item(),
                     "grad_input_l2_std": _std(in_sum[i].item(), in_sq[i].item(), n_total),
                     "grad_weight_l2": sum(g * g for g in gs) ** 0.5,
                     "grad_conv1_l2": g1, "grad_conv2_l2": g2, "images": n_total,
                     "bn": f"batch statistics, batches of {state['bs']}", "finite": not nonfinite,
                     "precision": ("bfloat16 autocast" if fast else "float32")
                     + ("" if weight_grads else ", input gradients only")})
    return pd.DataFrame(rows)


def precision_words(precision: str) -> str:
    """What a caption says of a ``precision`` value of :func:`gradient_flow`'s rows (the agreement with float32 is
    the one measured above and held by ``tests/analyses/test_analyses.py``)."""
    mode = precision.split(",")[0]
    return f"{mode} (the input gradients within 1 % of float32 at every block, measured)" if mode != "float32" else mode


def _std(total: float, total_sq: float, n: int) -> float:
    """Sample standard deviation from a sum and a sum of squares over n values."""
    if n < 2:
        return float("nan")
    return max(0.0, (total_sq - total * total / n) / (n - 1)) ** 0.5


def lambda_sweep(init_model: CifarResNet, batch: Batch, model_name: str, lambdas: Sequence[float] = LAMBDAS,
                 batch_size: int = 128, progress: Progress = None, weight_grads: bool = True) -> pd.DataFrame:
    """Gradient flow at initialisation for each shortcut scale lambda (lambda = 0 is the plain net)."""
    frames = []
    for j, lam in enumerate(lambdas):
        sub = None if progress is None else (lambda f, s, j=j: progress((j + f) / len(lambdas), s))
        frames.append(gradient_flow(init_model, batch, model_name, weights="init", lam=lam, batch_size=batch_size,
                                    progress=sub, weight_grads=weight_grads))
    return pd.concat(frames, ignore_index=True)


def gradient_summary(grads: pd.DataFrame) -> pd.DataFrame:
    """Per (model, state, lambda): the input-gradient norm at the first block over the one at the last
    block. Above 1: the gradient grows on its way to the input (explodes through depth); below 1: it shrinks.
    ``first_over_last_low`` / ``_high``: the ratio's 95 % interval, from the normal intervals of the two means
    over images (the extreme quotients; the full range where the last block's interval reaches 0)."""
    from ..core.stats import mean_interval, ratio_interval

    rows = []
    for (m, st, lam), g in grads.groupby(["model", "state", "lambda"], sort=False):
        g = g.sort_values("block_index")
        ends = []
        for pos in (0, -1):
            r = g.iloc[pos]
            sd = float(r["grad_input_l2_std"]) if "grad_input_l2_std" in g else float("nan")
            n = int(r["images"]) if "images" in g else 1
            ends.append((float(r["grad_input_l2"]), mean_interval(float(r["grad_input_l2"]), sd, n)))
        (first, fi), (last, li) = ends
        lo, hi = ratio_interval(fi, li)
        rows.append({"model": m, "state": st, "lambda": lam, "first_block_grad": first, "last_block_grad": last,
                     "first_over_last": first / last if last > 0 else float("inf"), "first_over_last_low": lo,
                     "first_over_last_high": hi, "blocks": len(g)})
    return pd.DataFrame(rows, columns=["model", "state", "lambda", "first_block_grad", "last_block_grad",
                                       "first_over_last", "first_over_last_low", "first_over_last_high", "blocks"])


def describe_lambda(summary: pd.DataFrame) -> list[str]:
    """Sentences on how the shortcut scale changes the gradient's growth through depth, one per model,
    computed from :func:`gradient_summary` rows of one state (e.g. 'init')."""
    out = []
    for m, g in summary.groupby("model", sort=False):
        g = g.sort_values("lambda")
        if len(g) < 2:
            continue
        parts = ", ".join(f"{r['first_over_last']:.3g}x at λ = {r['lambda']:g}" for _, r in g.iterrows())
        best = g.loc[np.log(g["first_over_last"].clip(lower=1e-300)).abs().idxmin()]
        text = (f"{m}: the gradient at the first block is {parts} the one at the last block; closest to an even "
                f"flow at λ = {best['lambda']:g}.")
        below, ident = g[g["lambda"] < 1.0], g[g["lambda"] == 1.0]
        if len(below) and len(ident):
            ref = float(ident["first_over_last"].iloc[0])
            shrinks = below[below["first_over_last"] < 1.0]
            if len(shrinks):
                text += (" With λ < 1 it shrinks towards the input (vanishes) at λ = "
                         + ", ".join(f"{v:g}" for v in shrinks["lambda"]) + ".")
            else:
                grows_more = below[below["first_over_last"] > ref]
                text += (" λ < 1 does not make it vanish here: it still grows towards the input"
                         + (", and more than with the identity shortcut (" + ", ".join(
                             f"λ = {r['lambda']:g}: {r['first_over_last']:.3g}x" for _, r in grows_more.iterrows())
                            + f" vs {ref:.3g}x)." if len(grows_more) else "."))
        above = g[g["lambda"] > 1.0]
        if len(above) and len(ident):
            ref = float(ident["first_over_last"].iloc[0])
            more = above[above["first_over_last"] > ref]
            if len(more):
                text += " λ > 1 makes it grow more than identity does (" + ", ".join(
                    f"λ = {r['lambda']:g}: {r['first_over_last']:.3g}x" for _, r in more.iterrows()) + ")."
        out.append(text)
    return out


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    b = ctx.sample(p["images"], random_input=p["random_input"])
    own = ctx.model.block(0).default_lam  # the λ "init" already measures: not measured twice
    sweep = [lam for lam in p["lambdas"] if not ("init" in p["states"] and lam == own)] if ctx.model.residual else []
    steps = len(p["states"]) + len(sweep)
    frames, init = [], None

    def sub(j: int):
        return lambda f, msg: ctx.tick((j + f) / max(1, steps), msg)

    for j, state in enumerate(p["states"]):
        if state == "trained":
            m = ctx.model
        else:
            init = init if init is not None else ctx.init_model()
            m = init
        frames.append(gradient_flow(m, b, ctx.name, weights=state, batch_size=p["batch_size"], progress=sub(j),
                                    weight_grads=p["weight_grads"]))
    if sweep:
        init = init if init is not None else ctx.init_model()
        frames.append(lambda_sweep(init, b, ctx.name, lambdas=sweep, batch_size=p["batch_size"],
                                   progress=sub(len(p["states"])), weight_grads=p["weight_grads"]))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(GRADIENT_COLUMNS))
    df["input"] = b.source
    return {"gradients": df}


def _atoms(p: dict, model: CifarResNet) -> list[dict]:
    """One weight state, or one λ at initialisation, per part; λ equal to the net's own shortcut scale at
    initialisation is the "init" state itself (the same measurement), so both requests share one result."""
    base = {**p, "states": (), "lambdas": ()}
    out = [{**base, "states": (state,)} for state in p["states"]]
    own = model.block(0).default_lam
    for lam in p["lambdas"] if model.residual else ():
        part = {**base, "states": ("init",)} if float(lam) == own else {**base, "lambdas": (lam,)}
        if part not in out:
            out.append(part)
    return out


GRADIENT_COLUMNS = ("model", "residual", "state", "lambda", "block", "block_index", "stage", "downsample",
                    "grad_input_l2", "grad_input_l2_std", "grad_weight_l2", "grad_conv1_l2", "grad_conv2_l2", "images", "bn", "finite",
                    "precision")

def _combine(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    g = tables.get("gradients")
    if g is None or g.empty:
        return {}
    summary = gradient_summary(g)
    rows = [{"topic": "lambda", "model": line.split(":", 1)[0], "sentence": line}
            for line in describe_lambda(summary[summary["state"] == "init"])]
    return {"gradient_summary": summary,
            "gradient_findings": pd.DataFrame(rows, columns=["topic", "model", "sentence"])}


register(Analysis(
    name="gradients", title="Gradient norms through depth: trained, at initialisation, with scaled shortcuts",
    work=lambda p: (len(p["states"]) + len(p["lambdas"])) * (1.0 if p["weight_grads"] else 0.45), atoms=_atoms,
    run=_run, combine=_combine, page="pages/2_Gradient_flow.py", order=20,
    tables=(Table("gradients", GRADIENT_COLUMNS + ("input",)),
            Table("gradient_summary", ("model", "state", "lambda", "first_block_grad", "last_block_grad",
                                       "first_over_last", "first_over_last_low", "first_over_last_high", "blocks")),
            Table("gradient_findings", ("topic", "model", "sentence"))),
    defaults={"images": 256, "states": ("trained", "init"), "lambdas": (0.5, 1.0, 1.5), "random_input": False,
              "batch_size": 128, "weight_grads": True},
    choices={"states": ("trained", "init"), "lambdas": LAMBDAS},
    quick={"images": 12, "lambdas": (0.5,), "batch_size": 6}))


# ---------------------------------------------------------------------------- the identity term, block by block
def gradient_split(model: CifarResNet, batch: Batch, model_name: str, batch_size: int = 64,
                   progress: Progress = None, fold: bool = True) -> pd.DataFrame:
    """How ∂loss/∂x at each block's input divides between the block's shortcut and its branch.

    For block i with input x_i and output merge(F(x_i), s(x_i)), the gradient is the sum of the part that
    flows back through the shortcut s and the part through the branch F (the notes' ∂(F(x) + x)/∂x =
    ∂F/∂x + I, with the unit's activation after the addition included in both): J_s(x_i)ᵀ g_s and J_F(x_i)ᵀ g_F,
    where g_s and g_F are the full net's gradients of the summed cross-entropy at the shortcut's and the branch's
    outputs. One backward pass gives every block's two parts: each block's branch and shortcut read their own copy
    of x_i (``clone``), and the gradient at each copy is the part through that path; the rest of the net runs as
    usual. (The same numbers as back-propagating with the other path detached, block by block, which took a
    backward pass per block and path: ``tests/analyses/test_analyses.py`` checks the two against each other.)
    Per image n: ‖g_shortcut[n]‖₂, ‖g_branch[n]‖₂; ``shortcut_share`` is the mean over images of
    ‖g_shortcut‖ / (‖g_shortcut‖ + ‖g_branch‖) (0 in a plain net, which has no shortcut). Eval-mode BN,
    float32, on a private copy with each BN that follows a conv folded into it: the same function with one pass less
    over the activations per BN, forward and backward (on resnet56's 64 images the norms within 7e-5 of the unfolded
    model's, relative, and the shares within 4e-6: float32 rounding carried through 27 blocks). ``fold=False``: the
    model's own layers, the comparison of ``benchmarks/analysis_steps.py split``.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> s = gradient_split(m, b, "resnet8", batch_size=4)  # args: model, batch, name, images per pass (64)
        >>> len(s), bool(s["shortcut_share"].between(0, 1).all())
        (3, True)
    """
    m = fold_batchnorm(private_copy(model)) if fold else private_copy(model)
    dev = model_device(m)
    n_blocks = m.num_blocks
    acc = {k: torch.zeros(n_blocks, dtype=torch.float64) for k in ("s", "f", "t", "share", "share_sq", "cos")}
    n_total = len(batch)

    def run(sl: slice) -> None:
        x, y = batch.x[sl].to(dev).float(), batch.y[sl].to(dev)
        with torch.no_grad():
            h = m.stem_forward(x)
        h.requires_grad_(True)
        x_branch, x_short = [], []
        for _, blk in m.blocks():
            xb, xs = h.clone(), h.clone()  # one copy for each path: its gradient is the part through that path
            x_branch.append(xb)
            x_short.append(xs)
            lam = blk.default_lam
            f = blk.branch(xb)
            h = blk.merge(f, blk.shortcut(xs) if lam != 0.0 else f, lam)
        loss = F.cross_entropy(m.head(h), y, reduction="sum")
        grads = torch.autograd.grad(loss, x_short + x_branch, allow_unused=True)
        for info, blk in m.blocks():
            i = info.index
            gs, gf = (torch.zeros_like(x_short[i]) if g is None else g for g in (grads[i], grads[n_blocks + i]))
            gs, gf = gs.flatten(1).double(), gf.flatten(1).double()
            ns, nf, nt = gs.norm(dim=1), gf.norm(dim=1), (gs + gf).norm(dim=1)
            acc["s"][i] += ns.sum().cpu()
            acc["f"][i] += nf.sum().cpu()
            acc["t"][i] += nt.sum().cpu()
            share = ns / (ns + nf).clamp_min(1e-300)
            acc["share"][i] += share.sum().cpu()
            acc["share_sq"][i] += (share * share).sum().cpu()
            acc["cos"][i] += ((gs * gf).sum(1) / (ns * nf).clamp_min(1e-300)).sum().cpu()
        if progress:
            progress(min(1.0, sl.stop / n_total), f"shortcut and branch gradients of {model_name}")

    chunked(run, n_total, batch_size)
    rows = []
    for info in m.block_info:
        i = info.index
        rows.append({"model": model_name, "residual": model.residual, "block": info.name, "block_index": i,
                     "stage": info.stage, "downsample": info.downsample, "lambda": m.block(i).default_lam,
                     "shortcut_grad_l2": (acc["s"][i] / n_total).item(), "branch_grad_l2": (acc["f"][i] / n_total).item(),
                     "total_grad_l2": (acc["t"][i] / n_total).item(), "shortcut_share": (acc["share"][i] / n_total).item(),
                     "shortcut_share_std": _std(acc["share"][i].item(), acc["share_sq"][i].item(), n_total),
                     "cosine_shortcut_branch": (acc["cos"][i] / n_total).item(), "images": n_total})
    return pd.DataFrame(rows)


def _run_split(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    return {"gradient_split": gradient_split(ctx.model, ctx.sample(p["images"]), ctx.name, batch_size=p["batch_size"],
                                             progress=ctx.progress)}


register(Analysis(
    name="gradient_split", title="The identity term: ∂loss/∂x through each block's shortcut vs its branch",
    run=_run_split, page="pages/2_Gradient_flow.py", order=22,
    defaults={"images": 64, "batch_size": 64}, quick={"images": 6, "batch_size": 3},
    tables=(Table("gradient_split", ("model", "residual", "block", "block_index", "stage", "downsample", "lambda",
                                     "shortcut_grad_l2", "branch_grad_l2", "total_grad_l2", "shortcut_share",
                                     "shortcut_share_std", "cosine_shortcut_branch", "images")),)))
