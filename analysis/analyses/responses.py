"""Layer responses (He et al. 2015, Fig. 7) and the size of each residual branch.

Definitions (the paper does not say how it aggregates, so ResLens fixes one):

* A *response* is the output of a 3x3 layer after its BN and before the addition and ReLU: the stem's
  BN output, and in every block ``bn1(conv1(.))`` and ``bn2(conv2(.))`` (the latter is F(x)). In the
  units of He et al. 2016 where no BN follows the second conv (``bn-after-add``, ``full-preact``) the
  second response is ``conv2``'s output, and in ``relu-before-add`` it is taken after the branch's ReLU:
  always the branch output F(x) before any trained branch scale or gate. Layer names say which (``.bn2`` or
  ``.conv2``). A bottleneck block has three responses (1x1, 3x3, 1x1: ``bn1``, ``bn2``, and ``bn3`` or ``conv3``);
  the ``kernel`` column says each layer's kernel, so Fig. 7's 3x3 layers are the rows with ``kernel == "3x3"``.
* ``std``: for each channel c, the standard deviation of that channel's values over all sampled images
  and all spatial positions (population std, N*H*W values); then the mean over channels.
  ``std_all`` is the std over every value of the layer at once. Eval mode: BN uses its running statistics.
  ``sorted_rank`` / ``sorted_rank_all`` number the layers by ``std`` / ``std_all``, largest first (Fig. 7, bottom).
* ``ratio``: per image, ||F(x)||_2 / ||x||_2 over all C*H*W values of the block's branch output and of
  the block's input; the mean over images is ``ratio`` (``ratio_median`` the median). ``ratio_shortcut``
  divides by the norm of the shortcut (option A subsamples, so it differs from ||x|| in downsampling blocks).
  F is the branch as it is added to the shortcut (in a ``scale{lam}f`` net, times 1 - lam).

Float32 throughout: stds of small residual responses are what is being compared. A page that shows the ratios
alone asks for them alone (``ratio_only``): one pass in bfloat16 autocast with channels_last on the CPU, 2.5x faster
(resnet56, 500 test images: 2.4 s for both tables in float32, 1.0 s), within :data:`RATIO_BF16_ABS` of float32 at
every block of the zoo's 16 CIFAR nets (500 test images: 0.0008 at most; 0.7 % relative where the ratio exceeds
0.01); ``tests/analyses/test_analyses.py`` holds it on four nets. The ``precision`` column says which.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..core.common import Batch, Progress, autocast, chunked, model_device, row_norms
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register


RATIO_BF16_ABS = 0.001  # the ratio-only mode's largest difference from float32, measured on the zoo


class _ChannelStats:
    """Per-channel mean and sum of squared deviations over every image and position seen, merged chunk by chunk in
    float64 (Chan et al.'s pairwise update) from each chunk's float32 ``var_mean``: no float64 copy of a response."""

    def __init__(self) -> None:
        self.mean = self.m2 = None
        self.n = 0

    def add(self, t: torch.Tensor) -> None:
        n = t.shape[0] * t.shape[2] * t.shape[3]
        var, mean = torch.var_mean(t.float(), dim=(0, 2, 3), correction=0)
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None:
            self.mean, self.m2 = mean, m2
        else:
            tot = self.n + n
            d = mean - self.mean
            self.mean = self.mean + d * (n / tot)
            self.m2 = self.m2 + m2 + d * d * (self.n * n / tot)
        self.n += n

    def std(self) -> tuple[float, float]:
        """(mean over channels of each channel's population std, the population std of all values at once)."""
        var = (self.m2 / self.n).clamp_min(0)
        all_var = (self.m2.sum() + self.n * ((self.mean - self.mean.mean()) ** 2).sum()) / (self.n * len(self.mean))
        return var.sqrt().mean().item(), all_var.clamp_min(0).sqrt().item()


@torch.no_grad()
def responses(model: CifarResNet, batch: Batch, model_name: str, chunk: int = 500,
              progress: Progress = None, ratio_only: bool = False) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(responses, residual_ratio) DataFrames for one model on one sample. Never changes the model.

    Args:
        model: the net (eval mode; only read).
        batch: the sample, normalised images ``x`` (N x 3 x 32 x 32) and labels ``y`` (N).
        model_name: the name written in the ``model`` column.
        chunk: images per forward pass (default 500; halved on CUDA out-of-memory).
        progress: an optional ``(fraction, message)`` callback.
        ratio_only: the residual ratios alone (no per-layer table: None in its place), in bfloat16 autocast with
            channels_last on the CPU (:data:`RATIO_BF16_ABS`; float32 on a GPU).

    Returns:
        One row per 3x3 layer (the stem's BN and two per block) with ``std`` and ``std_all``; one row per block
        with ``ratio`` = mean over images of ‖F(x)‖/‖x‖ (module docstring).

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> resp, ratio = responses(m, b, "resnet8")
        >>> len(resp), len(ratio), int(resp["images"].iloc[0])
        (7, 3, 8)
    """
    dev = model_device(model)
    fast = ratio_only and dev.type == "cpu"
    layers: dict[str, _ChannelStats] = {}
    ratios: dict[int, list[torch.Tensor]] = {i: [] for i in range(model.num_blocks)}
    ratios_sc: dict[int, list[torch.Tensor]] = {i: [] for i in range(model.num_blocks)}

    def stat(name: str) -> _ChannelStats:
        return layers.setdefault(name, _ChannelStats())

    branch_layers: set[str] = set()
    kernels: dict[str, str] = {"stem.bn": "3x3"}

    def run(sl: slice):
        x = batch.x[sl].to(dev)
        h = model.stem.bn(model.stem.conv(model.input_norm(x.contiguous(memory_format=torch.channels_last) if fast else x)))
        if not ratio_only:
            stat("stem.bn").add(h)
        h = model.stem.relu(h)
        for info, blk in model.blocks():
            i, name = info.index, info.name
            names = blk.response_names
            rs, f, sc, out = blk.parts(h)  # out: the block as the model runs it (plain or residual)
            for layer, r, conv in zip(names, rs, blk.convs) if not ratio_only else ():
                stat(f"{name}.{layer}").add(r)
                kernels[f"{name}.{layer}"] = f"{conv.kernel_size[0]}x{conv.kernel_size[1]}"
            branch_layers.add(f"{name}.{names[-1]}")
            fn = row_norms(f)
            ratios[i].append((fn / row_norms(h).clamp_min(1e-12)).cpu())
            ratios_sc[i].append((fn / row_norms(sc).clamp_min(1e-12)).cpu())
            h = out
        if progress:
            progress(sl.stop / len(batch), f"{'residual ratios' if ratio_only else 'responses'} of {model_name}")

    with autocast(dev, fast):
        chunked(run, len(batch), chunk)
    ratio = _ratio_table(model, model_name, ratios, ratios_sc, len(batch), "bfloat16 autocast" if fast else "float32")
    if ratio_only:
        return None, ratio
    rows = []
    for li, (name, st) in enumerate(layers.items(), start=1):
        std, std_all = st.std()
        block = name.rsplit(".", 1)[0] if name.startswith("stage") else ""
        stage = int(name[5]) if name.startswith("stage") else 0
        rows.append({"model": model_name, "residual": model.residual, "layer": name, "layer_index": li,
                     "block": block, "stage": stage, "kernel": kernels[name], "std": std, "std_all": std_all,
                     "is_branch_output": name in branch_layers, "images": len(batch)})
    resp = pd.DataFrame(rows)
    resp["sorted_rank"] = resp["std"].rank(ascending=False, method="first").astype(int)
    resp["sorted_rank_all"] = resp["std_all"].rank(ascending=False, method="first").astype(int)
    resp["aggregation"] = "mean over channels of per-channel std over images and positions (eval-mode BN)"
    return resp, ratio


def _ratio_table(model: CifarResNet, model_name: str, ratios: dict, ratios_sc: dict, images: int,
                 precision: str) -> pd.DataFrame:
    rrows = []
    for i, info in enumerate(model.block_info):
        r = torch.cat(ratios[i])
        rrows.append({"model": model_name, "residual": model.residual, "block": info.name, "block_index": i,
                      "stage": info.stage, "downsample": info.downsample, "ratio": r.mean().item(),
                      "ratio_median": r.median().item(), "ratio_shortcut": torch.cat(ratios_sc[i]).mean().item(),
                      "images": images, "precision": precision})
    ratio = pd.DataFrame(rrows)
    ratio["definition"] = "mean over images of ||F(x)||_2 / ||x||_2 (F = the branch output as added to the shortcut)"
    return ratio


def ratio_precision_words(precision: str) -> str:
    """What a caption says of a ``precision`` value of the ``residual_ratio`` rows."""
    return precision if precision == "float32" else \
        f"{precision} (within {RATIO_BF16_ABS:g} of float32 at every block of the zoo's nets, measured)"


MEASURES = {
    "std": ("per-channel std, mean over channels", "median over the 3x3 layers"),
    "std_all": ("std over all values of the layer", "median over the 3x3 layers"),
    "ratio": ("||F(x)|| / ||x|| per block", "mean over blocks"),
}


def compare_responses(resp: pd.DataFrame, ratio: pd.DataFrame) -> pd.DataFrame:
    """Plain vs residual at equal depth, one row per (pair, measure).

    Pairs every plain model with every residual model that has the same number of 3x3 layers.
    ``plain_value`` / ``residual_value``: the median over layers of ``std`` or ``std_all``, or the mean over
    blocks of ``ratio``. ``share_residual_below``: both nets' values sorted largest first, the share of ranks
    at which the residual net's value is the smaller one (Fig. 7, bottom, read rank by rank).
    """
    info = {m: (bool(g["residual"].iloc[0]), len(g)) for m, g in resp.groupby("model", sort=False)}
    rows = []
    for p, (p_res, p_layers) in info.items():
        for r, (r_res, r_layers) in info.items():
            if p_res or not r_res or p_layers != r_layers:
                continue
            for col, (label, stat) in MEASURES.items():
                src = ratio if col == "ratio" else resp
                a = np.sort(src.loc[src["model"] == p, col].to_numpy())[::-1]
                b = np.sort(src.loc[src["model"] == r, col].to_numpy())[::-1]
                if len(a) == 0 or len(a) != len(b):
                    continue
                agg = np.mean if col == "ratio" else np.median
                pv, rv = float(agg(a)), float(agg(b))
                rows.append({"depth": p_layers + 1, "plain": p, "residual": r, "measure": col, "definition": label,
                             "statistic": stat, "plain_value": pv, "residual_value": rv,
                             "residual_smaller": rv < pv, "share_residual_below": float((b < a).mean()),
                             "count": len(a)})
    return pd.DataFrame(rows, columns=["depth", "plain", "residual", "measure", "definition", "statistic",
                                       "plain_value", "residual_value", "residual_smaller",
                                       "share_residual_below", "count"])


def summarize_responses(resp: pd.DataFrame, ratio: pd.DataFrame) -> pd.DataFrame:
    """One row per model: median ``std`` and ``std_all`` over its 3x3 layers, mean ``ratio`` over its blocks."""
    out = resp.groupby("model", sort=False).agg(residual=("residual", "first"), layers=("layer", "size"),
                                                 median_std=("std", "median"), median_std_all=("std_all", "median"))
    out["mean_ratio"] = ratio.groupby("model", sort=False)["ratio"].mean()
    return out.reset_index()


# ---------------------------------------------------------------------------- registry
def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    resp, ratio = responses(ctx.model, ctx.sample(ctx.params["images"]), ctx.name, progress=ctx.progress,
                            ratio_only=ctx.params["ratio_only"])
    return {"residual_ratio": ratio} if resp is None else {"responses": resp, "residual_ratio": ratio}


def _combine(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if "responses" not in tables:
        return {}
    return {"response_comparison": compare_responses(tables["responses"], tables["residual_ratio"]),
            "response_summary": summarize_responses(tables["responses"], tables["residual_ratio"])}


register(Analysis(
    name="responses", title="Layer responses (He et al. 2015, Fig. 7) and the size of each residual branch",
    run=_run, combine=_combine, page="pages/1_Responses.py", order=10,
    work=lambda p: 0.42 if p["ratio_only"] else 1.0,  # resnet56, 500 images: 1.0 s against 2.4 s (module docstring)
    tables=(Table("responses", ("model", "residual", "layer", "layer_index", "block", "stage", "kernel", "std", "std_all",
                                "is_branch_output", "images", "sorted_rank", "sorted_rank_all")),
            Table("residual_ratio", ("model", "residual", "block", "block_index", "stage", "downsample", "ratio",
                                     "ratio_median", "ratio_shortcut", "images")),
            Table("response_comparison", ("depth", "plain", "residual", "measure", "plain_value", "residual_value",
                                          "residual_smaller", "share_residual_below")),
            Table("response_summary", ("model", "residual", "layers", "median_std", "median_std_all", "mean_ratio"))),
    defaults={"images": None, "ratio_only": False}, quick={"images": 16}))
