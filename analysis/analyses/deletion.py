"""Lesion experiments of Veit, Wilber and Belongie 2016 and the path view of a residual net.

* Deleting a block runs only its skip path (``Block.skip_path``): the identity, or in a
  downsampling block option A's subsample-and-pad (so a deleted downsampling block still changes the
  shape; its branch weights are unused); a projection shortcut (option B, conv1x1) still runs, and a
  net trained with a shortcut scale keeps it (lam * s(x)).
  Plain nets get exactly the same treatment for contrast.
* Sweeps reuse computed prefixes: the input of every block is computed once per chunk of images, and a
  deletion (or reordering) whose first change is at block i runs only blocks i.. on block i's cached
  input (``CifarResNet.forward_from``). The intact prefix is never recomputed, nor a variant asked for twice (a k = 1
  random draw is a single-block deletion: its error is read back from the cache).
* Errors are top-1 error in percent over the sample, eval-mode BN folded into the conv before it, bfloat16 conv
  weights in autocast with channels_last, each conv fused with its ReLU and an original unit's addition
  (``inference_copy`` in :mod:`analysis.analyses._prefix`, with the cache): on the zoo's nets (500 test images) a
  single-block deletion's error lies within :data:`~analysis.analyses._prefix.FLOAT32_GAP` of float32
  (``tests/analyses/test_analyses.py`` holds plain20 and resnet20 within 1 point).
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from ..core.common import Batch, Progress, model_device
from ..core.stats import bootstrap_mean
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register
from ._prefix import PrefixCache


def delete_single(model: CifarResNet, batch: Batch, model_name: str, cache: PrefixCache | None = None,
                  progress: Progress = None) -> pd.DataFrame:
    """Error with each block deleted alone (one row per block).

    Args:
        model: the net (only read).
        batch: normalised images (N x 3 x 32 x 32) and labels (N).
        model_name: the ``model`` column.
        cache: the sample's block inputs (default None: computed here); share one across deletion analyses.
        progress: an optional ``(fraction, message)`` callback.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> d = delete_single(m, b, "resnet8")
        >>> len(d), bool(d["error_pct"].between(0, 100).all())
        (3, True)
    """
    cache = cache or PrefixCache(model, batch)
    intact = cache.intact_error_pct()
    rows = []
    for i, info in enumerate(model.block_info):
        err = cache.error_pct(i, skip={i})
        rows.append({"model": model_name, "residual": model.residual, "block": info.name, "block_index": i,
                     "stage": info.stage, "downsample": info.downsample, "error_pct": err,
                     "intact_error_pct": intact, "delta_error_pct": err - intact, "images": len(batch),
                     "note": "a deleted downsampling block still runs its shortcut (option A's subsample-and-pad, "
                             "or the projection)" if info.downsample else ""})
        if progress:
            progress((i + 1) / model.num_blocks, f"deleting single blocks of {model_name}")
    return pd.DataFrame(rows)


def deletable_blocks(model: CifarResNet, include_downsampling: bool = False) -> list[int]:
    return [b.index for b in model.block_info if include_downsampling or not b.downsample]


def delete_random(model: CifarResNet, batch: Batch, model_name: str, ks: Sequence[int], trials: int, seed: int,
                  include_downsampling: bool = False, cache: PrefixCache | None = None,
                  progress: Progress = None) -> pd.DataFrame:
    """Error with k random blocks deleted, ``trials`` draws per k (k = 0 is the intact model, one row).

    Each k draws from its own stream (seed ``seed * 1000 + k``), so asking for more k's, or for one k
    alone, never changes the draws of another k.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> d = delete_random(m, b, "resnet8", ks=[0, 1], trials=2, seed=0)  # args: model, batch, name, ks, trials
        >>> list(d["k"])  # k = 0 is the intact net, once
        [0, 1, 1]
    """
    cache = cache or PrefixCache(model, batch)
    pool = deletable_blocks(model, include_downsampling)
    rows, total, done = [], sum(1 if k == 0 else trials for k in ks), 0
    for k in ks:
        if k > len(pool):
            raise ValueError(f"k={k} exceeds the {len(pool)} deletable blocks of {model_name}")
        rng = random.Random(seed * 1000 + k)
        for t in range(1 if k == 0 else trials):
            chosen = sorted(rng.sample(pool, k))
            err = cache.error_pct(chosen[0] if chosen else 0, skip=set(chosen))
            rows.append({"model": model_name, "residual": model.residual, "k": k, "trial": t,
                         "blocks": " ".join(model.block_info[i].name for i in chosen), "error_pct": err,
                         "images": len(batch)})
            done += 1
            if progress:
                progress(done / total, f"deleting random blocks of {model_name}")
    return pd.DataFrame(rows)


RANDOM_INTERVAL = "95 % percentile bootstrap interval of the mean over trials (2,000 resamples)"


def summarize_random(df: pd.DataFrame) -> pd.DataFrame:
    """Mean error per (model, k) with the 95 % percentile bootstrap interval of that mean over the trials: it lies
    between the smallest and the largest trial, so inside 0-100 % (a Student-t interval over three trials ran from
    -60 % to 160 %). One trial (k = 0, the intact net) has a zero-width interval."""
    out = []
    for (model, k), g in df.groupby(["model", "k"], sort=True):
        m, lo, hi = bootstrap_mean(g["error_pct"], seed=int(k))
        out.append({"model": model, "residual": bool(g["residual"].iloc[0]), "k": int(k), "trials": len(g),
                    "mean_error_pct": m, "ci95_low": lo, "ci95_high": hi, "interval": RANDOM_INTERVAL})
    return pd.DataFrame(out, columns=["model", "residual", "k", "trials", "mean_error_pct", "ci95_low", "ci95_high",
                                      "interval"])


def kendall_tau(perm: Sequence[int]) -> float:
    """Kendall's tau between ``perm`` and the identity order 0..n-1 (1 = unchanged, -1 = reversed)."""
    n = len(perm)
    if n < 2:
        return 1.0
    conc = disc = 0
    for a in range(n):
        for b in range(a + 1, n):
            if perm[a] < perm[b]:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / (n * (n - 1) / 2)


def reorder(model: CifarResNet, batch: Batch, model_name: str, trials: int, seed: int, max_swaps: int | None = None,
            cache: PrefixCache | None = None, progress: Progress = None) -> pd.DataFrame:
    """Swap random pairs of same-shape blocks (non-downsampling blocks of one stage); error vs Kendall tau."""
    cache = cache or PrefixCache(model, batch)
    rng = random.Random(seed)
    groups: dict[int, list[int]] = {}
    for b in model.block_info:
        if not b.downsample:
            groups.setdefault(b.stage, []).append(b.index)
    groups = {s: g for s, g in groups.items() if len(g) >= 2}
    if not groups:
        raise ValueError(f"{model_name} has no two same-shape blocks to swap")
    max_swaps = max_swaps or max(1, model.num_blocks // 2)
    rows = []
    for t in range(trials):
        order = list(range(model.num_blocks))
        n_swaps = rng.randint(1, max_swaps)
        for _ in range(n_swaps):
            g = groups[rng.choice(sorted(groups))]
            a, b = rng.sample(g, 2)
            pa, pb = order.index(a), order.index(b)
            order[pa], order[pb] = order[pb], order[pa]
        first = next((p for p, i in enumerate(order) if p != i), 0)
        err = cache.error_pct(first, order=order)
        rows.append({"model": model_name, "residual": model.residual, "trial": t, "swaps": n_swaps,
                     "kendall_tau": kendall_tau(order), "error_pct": err, "order": " ".join(map(str, order)),
                     "images": len(batch)})
        if progress:
            progress((t + 1) / trials, f"reordering blocks of {model_name}")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- paths
def path_distribution(n: int) -> pd.DataFrame:
    """The exact distribution of path lengths in a net of n blocks: Binomial(n, 1/2)."""
    rows = [{"length": k, "n_paths": math.comb(n, k), "fraction": math.comb(n, k) / 2 ** n} for k in range(n + 1)]
    return pd.DataFrame(rows)


def _path_forward(model: CifarResNet, h: torch.Tensor, through_branch: set[int]) -> torch.Tensor:
    """Forward values of the intact net; gradients flow through the branch F of the blocks in
    ``through_branch`` and through the skip path of every other block (Veit et al. 2016, section 5.2). The
    definition, one draw at a time: :func:`_routed_backward` computes the same for many draws at once, and the tests
    hold it to this."""
    for info, blk in model.blocks():
        f, s = blk.branch(h), blk.shortcut(h)
        lam = blk.default_lam
        h = blk.merge(f, s.detach(), lam) if info.index in through_branch else blk.merge(f.detach(), s, lam)
    return h


def path_draws(n_blocks: int, n_images: int, lengths: Sequence[int], samples_per_length: int, batch_size: int,
               seed: int) -> list[tuple[torch.Tensor, list[tuple[int, set[int]]]]]:
    """The random draws of :func:`path_gradients`: ``samples_per_length`` rounds, each one batch of image indices
    (with replacement) and, for every length k, k blocks drawn without replacement."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    rounds = []
    for _ in range(samples_per_length):
        idx = torch.randint(0, n_images, (min(batch_size, n_images),), generator=gen)
        rounds.append((idx, [(k, set(rng.sample(range(n_blocks), k))) for k in lengths]))
    return rounds


def _routed_backward(model: CifarResNet, x: torch.Tensor, y: torch.Tensor, routes: torch.Tensor,
                     written: bool = True) -> torch.Tensor:
    """∂loss/∂x_0 for each of D routings of one image batch at once: D x N gradient norms. ``routes`` (D x blocks,
    bool) says per routing which blocks the gradient passes through the branch of (else the skip path). The forward
    pass runs once; the backward goes block by block from the top, the D cotangents batched, each block's branch
    back-propagated only for the routings that pass through it. Where a block writes its branch's product down
    (:meth:`~analysis.core.blocks.Block.branch_vjp`) that is one call on all of them, and with an identity shortcut
    the addition's ReLU and the skip path are written down too; elsewhere autograd's ``is_grads_batched`` does each
    step (``written=False``: everywhere, the comparison of ``benchmarks/analysis_steps.py paths``)."""
    with torch.no_grad():
        h = model.stem_forward(x)
    graphs = []
    for _, blk in model.blocks():
        written_down = blk.branch_vjp(h) if written else None
        vjp = written_down[1] if written_down else None
        with torch.no_grad():
            if written_down and blk.shortcut(h) is h and blk.default_lam != 0.0:  # no graph: all of it written down
                out = blk.merge(written_down[0], h, blk.default_lam)
                graphs.append((h, None, h, None, None, out, vjp))
                h = out
                continue
        hi = h.detach().requires_grad_(True)
        f, s = blk.branch(hi), blk.shortcut(hi)
        fl, sl = f.detach().requires_grad_(True), s.detach().requires_grad_(True)
        out = blk.merge(fl, sl, blk.default_lam)
        graphs.append((hi, f, s, fl, sl, out, vjp))
        h = out.detach()
    h.requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model.head(h), y, reduction="sum"), h)
    cot = g.unsqueeze(0).expand(len(routes), *g.shape).contiguous()
    for i in range(len(graphs) - 1, -1, -1):
        hi, f, s, fl, sl, out, vjp = graphs[i]
        through = routes[:, i].to(cot.device)
        lam = model.block(i).default_lam
        if vjp is not None and s is hi and lam != 0.0:
            # An original unit with the identity shortcut, written down: out = ReLU(F + λx), so the cotangent at
            # both F and λx is cot where out > 0; the skip path passes λ times it on unchanged.
            g = cot * (out.detach() > 0)
            nxt = g if lam == 1.0 else g * lam
            idx = through.nonzero().flatten()
            if len(idx):
                nxt.index_copy_(0, idx, vjp(g.index_select(0, idx)))
            cot = nxt
            continue
        g_f, g_s = (torch.zeros_like(cot) if v is None else v for v in torch.autograd.grad(
            out, (fl, sl), cot, is_grads_batched=True, retain_graph=True, allow_unused=True))
        nxt = torch.empty(len(routes), *hi.shape, dtype=cot.dtype, device=cot.device)
        for sel, t, gt in ((through, f, g_f), (~through, s, g_s)):
            idx = sel.nonzero().flatten()
            if not len(idx):
                continue
            gt = gt.index_select(0, idx)
            if t is f and vjp is not None:
                part = vjp(gt)
            else:
                (part,) = torch.autograd.grad(t, hi, gt, is_grads_batched=True, retain_graph=True, allow_unused=True)
            if part is None:
                nxt.index_fill_(0, idx, 0.0)
            else:
                nxt.index_copy_(0, idx, part)
        cot = nxt
    return cot.flatten(2).norm(dim=2)


def path_gradients(model: CifarResNet, batch: Batch, model_name: str, samples_per_length: int = 10,
                   batch_size: int = 16, seed: int = 0, lengths: Sequence[int] | None = None,
                   progress: Progress = None) -> pd.DataFrame:
    """Gradient magnitude at block 0's input carried by paths of each length k (float32, eval-mode BN).

    ``samples_per_length`` rounds; in each, a batch of ``batch_size`` images and, for every length k, k blocks drawn
    at random (:func:`path_draws`). Per draw the summed cross-entropy is back-propagated through the residual branches
    of those k blocks only and the skip path elsewhere (Veit et al. 2016, section 5.2), and the mean over images of
    ||d loss_n / d x_0[n]||_2 recorded. ``grad_norm`` is the mean over the rounds (one path's typical gradient),
    ``grad_norm_std`` its spread over them, ``total_grad`` = C(n, k) * grad_norm, and ``total_grad_low`` /
    ``total_grad_high`` the 95 % normal interval of that mean times C(n, k) (zero width with one round). The draws of a
    round share its images, so one forward pass serves all of them (:func:`_routed_backward`); the numbers are those
    of back-propagating each draw on its own (``tests/analyses/test_analyses.py``).

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> p = path_gradients(m, b, "resnet8", samples_per_length=2, batch_size=4)  # lengths 0..3 of 3 blocks
        >>> list(p["n_paths"]), round(float(p["fraction"].sum()), 6)
        ([1, 3, 3, 1], 1.0)
    """
    if not model.residual:
        raise ValueError("paths are defined for residual nets (a plain net has a single path)")
    dev = model_device(model)
    n = model.num_blocks
    lengths = list(range(n + 1)) if lengths is None else list(lengths)
    dist = path_distribution(n).set_index("length")
    norms: dict[int, list[float]] = {k: [] for k in lengths}
    rounds = path_draws(n, len(batch), lengths, samples_per_length, batch_size, seed)
    for j, (idx, draws) in enumerate(rounds):
        routes = torch.tensor([[i in blocks for i in range(n)] for _, blocks in draws])
        per_image = _routed_backward(model, batch.x[idx].to(dev), batch.y[idx].to(dev), routes)
        for (k, _), v in zip(draws, per_image.mean(1).tolist()):
            norms[k].append(v)
        if progress:
            progress((j + 1) / len(rounds), f"gradient by path length in {model_name}")
    rows = []
    for k in lengths:
        vals = norms[k]
        gn = sum(vals) / len(vals)
        sd = (sum((v - gn) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else float("nan")
        half = (1.959964 * sd / math.sqrt(len(vals))) if len(vals) > 1 else 0.0
        c = math.comb(n, k)
        rows.append({"model": model_name, "length": k, "n_paths": int(dist.loc[k, "n_paths"]),
                     "fraction": float(dist.loc[k, "fraction"]), "grad_norm": gn, "grad_norm_std": sd,
                     "total_grad": gn * c, "total_grad_low": max(0.0, gn - half) * c, "total_grad_high": (gn + half) * c,
                     "samples": samples_per_length, "batch": batch_size})
    df = pd.DataFrame(rows)
    s = df["total_grad"].sum()
    df["total_grad_share"] = df["total_grad"] / s if s > 0 else 0.0
    return df


# ---------------------------------------------------------------------------- registry
def _cache(ctx: Context) -> PrefixCache:
    """The sample's block inputs, shared by every deletion analysis of one model and sample (computed once per
    run, or once per dashboard scope)."""
    return ctx.share("prefix_cache", lambda: PrefixCache(ctx.model, ctx.sample()))


def _run_single(ctx: Context) -> dict[str, pd.DataFrame]:
    c = _cache(ctx)
    return {"deletion_single": delete_single(ctx.model, c.batch, ctx.name, cache=c, progress=ctx.progress)}


def _run_random(ctx: Context) -> dict[str, pd.DataFrame]:
    c, p = _cache(ctx), ctx.params
    pool = len(deletable_blocks(ctx.model))
    ks = [k for k in p["ks"] if k <= pool]
    return {"deletion_random": delete_random(ctx.model, c.batch, ctx.name, ks=ks, trials=p["trials"], seed=ctx.seed, cache=c,
                                             progress=ctx.progress)}


def _run_reorder(ctx: Context) -> dict[str, pd.DataFrame]:
    c = _cache(ctx)
    return {"reorder": reorder(ctx.model, c.batch, ctx.name, trials=ctx.params["trials"], seed=ctx.seed, cache=c,
                               progress=ctx.progress)}


def _run_paths(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    return {"paths": path_gradients(ctx.model, ctx.sample(), ctx.name, samples_per_length=p["per_length"],
                                    batch_size=p["batch"], seed=ctx.seed, lengths=p["lengths"], progress=ctx.progress)}


FINDING_COLUMNS = ("topic", "model", "sentence")


def single_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: the median rise of the error when one non-downsampling block is deleted, the worst block, the
    downsampling blocks; then whether Veit et al.'s contrast (residual nets degrade a little, plain nets collapse) shows
    on the models given."""
    rows, med = [], {}
    for m, g in df.groupby("model", sort=False):
        nd, ds = g[~g["downsample"]], g[g["downsample"]]
        intact = float(g["intact_error_pct"].iloc[0])
        if nd.empty:
            continue
        rise = float(nd["delta_error_pct"].median())
        med[m] = (bool(g["residual"].iloc[0]), rise)
        worst = nd.loc[nd["delta_error_pct"].idxmax()]
        down = ", ".join(f"{r.block} {r.error_pct:.1f} %" for r in ds.itertuples())
        rows.append({"topic": "deletion_single", "model": m, "sentence": (
            f"{m}: deleting one of its {len(nd)} non-downsampling blocks raises the error by {rise:.1f} points on "
            f"median, from {intact:.1f} % intact (the worst, {worst['block']}, to {worst['error_pct']:.1f} %)"
            + (f"; the downsampling blocks: {down}" if down else "") + ".")})
    res = [v for r, v in med.values() if r]
    plain = [v for r, v in med.values() if not r]
    if res and plain:
        shows = max(res) < min(plain)
        rows.append({"topic": "deletion_single", "model": "all", "sentence": (
            f"Median rise: residual nets {', '.join(f'{v:.1f}' for v in res)} points, plain nets "
            f"{', '.join(f'{v:.1f}' for v in plain)}: " + ("every residual net degrades less than every plain net, as "
            "Veit et al. found." if shows else "Veit et al.'s contrast does not show on these models: some residual "
            "net degrades as much as a plain one."))})
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def random_findings(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model: the least-squares slope of the mean error in k (points per deleted block) over the k measured."""
    rows = []
    for m, g in summary.groupby("model", sort=False):
        g = g.sort_values("k")
        if len(g) < 2:
            continue
        k, e = g["k"].to_numpy(float), g["mean_error_pct"].to_numpy(float)
        slope = float(((k - k.mean()) * (e - e.mean())).sum() / ((k - k.mean()) ** 2).sum())
        rows.append({"topic": "deletion_random", "model": m, "sentence": (
            f"{m}: the mean error rises by {slope:.1f} points per deleted block (least squares over k = "
            f"{int(k[0])}-{int(k[-1])}), from {e[0]:.1f} % to {e[-1]:.1f} %.")})
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def paths_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: the path length where the total gradient peaks, the lengths that its 95 % interval cannot tell
    from the peak, and whether they lie below half the depth (Veit et al.: the gradient comes from short paths)."""
    rows = []
    for m, g in df.groupby("model", sort=False):
        g = g.sort_values("length")
        n = int(g["length"].max())
        peak = g.loc[g["total_grad"].idxmax()]
        near = g[g["total_grad_high"] >= peak["total_grad_low"]]["length"]
        lo, hi = int(near.min()), int(near.max())
        one = int(g["samples"].iloc[0]) < 2
        span = ("one draw per length, so no interval" if one else
                f"lengths {lo}-{hi} cannot be told from it by their 95 % intervals at {int(g['samples'].iloc[0])} draws "
                "per length")
        short = hi < n / 2
        rows.append({"topic": "paths", "model": m, "sentence": (
            f"{m}: the total gradient peaks at path length {int(peak['length'])} of {n} ({span}); "
            + (f"below half the depth ({n / 2:g}): the gradient comes from short paths, as Veit et al. found."
               if short else f"not clearly below half the depth ({n / 2:g}): Veit et al.'s finding does not show at "
               "this sample size."))})
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def _combine_single(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    d = tables.get("deletion_single")
    return {} if d is None or d.empty else {"deletion_single_findings": single_findings(d)}


def _combine_paths(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    d = tables.get("paths")
    return {} if d is None or d.empty else {"paths_findings": paths_findings(d)}


_PAGE = "pages/3_Block_deletion.py"
register(Analysis(
    name="deletion_single", title="Deleting one block (Veit et al. 2016)", run=_run_single, group="deletion",
    page=_PAGE, order=30, defaults={}, quick={}, combine=_combine_single,
    tables=(Table("deletion_single", ("model", "residual", "block", "block_index", "stage", "downsample", "error_pct",
                                      "intact_error_pct", "delta_error_pct", "images")),
            Table("deletion_single_findings", FINDING_COLUMNS))))


def _combine_random(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    d = tables.get("deletion_random")
    if d is None or d.empty:
        return {}
    summary = summarize_random(d)
    return {"deletion_random_summary": summary, "deletion_random_findings": random_findings(summary)}


register(Analysis(
    name="deletion_random", title="Deleting k random blocks", run=_run_random, group="deletion", page=_PAGE, order=31,
    work=lambda p: len(p["ks"]) * p["trials"],
    defaults={"ks": (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20), "trials": 5}, quick={"ks": (0, 1, 2), "trials": 2},
    combine=_combine_random,
    tables=(Table("deletion_random", ("model", "residual", "k", "trial", "blocks", "error_pct", "images")),
            Table("deletion_random_summary", ("model", "residual", "k", "trials", "mean_error_pct", "ci95_low",
                                              "ci95_high", "interval")),
            Table("deletion_random_findings", FINDING_COLUMNS))))
register(Analysis(
    name="reorder", title="Reordering same-shape blocks", run=_run_reorder, group="deletion", page=_PAGE, order=32,
    work=lambda p: p["trials"],
    defaults={"trials": 10}, quick={"trials": 2},
    tables=(Table("reorder", ("model", "residual", "trial", "swaps", "kendall_tau", "error_pct", "order", "images")),)))
register(Analysis(
    name="paths", title="Gradient by path length (Veit et al. 2016, section 5.2)", run=_run_paths, residual_only=True,
    work=lambda p: p["per_length"],
    page=_PAGE, order=33, defaults={"per_length": 4, "batch": 16, "lengths": None},
    quick={"per_length": 1, "batch": 4, "lengths": (0, 2)}, combine=_combine_paths,
    tables=(Table("paths", ("model", "length", "n_paths", "fraction", "grad_norm", "grad_norm_std", "total_grad",
                            "total_grad_low", "total_grad_high", "total_grad_share", "samples", "batch")),
            Table("paths_findings", FINDING_COLUMNS))))
