"""Captum attributions for plain and residual nets (never hand-written).

All attribution work runs on a private copy of the model in eval mode, float32: Captum registers hooks
on the modules it explains, and a cached model shared by every session must never carry them. The
ReLUs are separate ``nn.ReLU`` modules, never reused or in place, so DeepLift's rules apply to each.

Baselines are the all-zero *normalised* input, i.e. the mean CIFAR-10 image. The target is the class
the model predicts unless one is given. Faithfulness is Captum's ``infidelity`` (lower is better) with
Gaussian perturbations of std 0.05 in normalised units and ``normalize=True`` so that methods on
different scales compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from ..core import data as D
from ..core.common import Progress, chunked, model_device, private_copy, retry_halving, seeded_global_rng
from ..core.models import CifarResNet
from ..engine.registry import Analysis, Context, Table, register

METHODS = ("Saliency", "IntegratedGradients", "DeepLift", "GradientShap", "Occlusion")


@dataclass
class AttributionResult:
    model: str
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> H x W, summed over channels
    gradcam: dict[str, np.ndarray] = field(default_factory=dict)  # stage -> H x W (ReLU, upsampled)
    rows: list[dict] = field(default_factory=list)
    convergence_delta: float | None = None  # Integrated Gradients' completeness error

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def map_frame(self, image_id: str) -> pd.DataFrame:
        """Every method's map as a tidy table: one row per (method, pixel)."""
        return _pixels({m: a for m, a in self.maps.items()}, "method", "attribution", model=self.model, image_id=image_id)

    def gradcam_frame(self, image_id: str) -> pd.DataFrame:
        return _pixels(self.gradcam, "stage", "gradcam", model=self.model, image_id=image_id)


def _pixels(maps: dict[str, np.ndarray], key: str, value: str, model: str, image_id: str) -> pd.DataFrame:
    frames = []
    for k, a in maps.items():
        h, w = a.shape
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        frames.append(pd.DataFrame({"model": model, "image": image_id, key: k, "y": yy.reshape(-1),
                                    "x": xx.reshape(-1), value: a.reshape(-1)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["model", "image", key, "y", "x", value])


def _attribute(method: str, m: CifarResNet, x: torch.Tensor, target: int, seed: int, ig_steps: int,
               internal_batch_size: int | None):
    # Captum is imported where it is used: it pulls in matplotlib and IPython, which every
    # `python -m analysis` command would otherwise pay through the registry.
    from captum.attr import DeepLift, GradientShap, IntegratedGradients, Occlusion, Saliency

    base = torch.zeros_like(x)
    if method == "Saliency":
        return Saliency(m).attribute(x, target=target, abs=False), None
    if method == "IntegratedGradients":
        a, delta = IntegratedGradients(m).attribute(x, baselines=base, target=target, n_steps=ig_steps,
                                                    internal_batch_size=internal_batch_size,
                                                    return_convergence_delta=True)
        return a, float(delta.abs().max())
    if method == "DeepLift":
        return DeepLift(m).attribute(x, baselines=base, target=target), None
    if method == "GradientShap":
        g = torch.Generator(device="cpu").manual_seed(seed)
        baselines = torch.cat([base, 0.5 * torch.randn((7,) + tuple(x.shape[1:]), generator=g).to(x.device)])
        with seeded_global_rng(seed):  # GradientShap draws its noise from the global generator
            return GradientShap(m).attribute(x, baselines=baselines, target=target, n_samples=20, stdevs=0.1), None
    if method == "Occlusion":
        return Occlusion(m).attribute(x, baselines=0.0, target=target, sliding_window_shapes=(3, 4, 4),
                                      strides=(3, 2, 2)), None
    raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")


def attribute_image(model: CifarResNet, x: torch.Tensor, model_name: str, image_id: str, label: int | None,
                    methods: Sequence[str] = METHODS, target: int | None = None, seed: int = 0,
                    ig_steps: int = 50, internal_batch_size: int | None = 64, with_infidelity: bool = True,
                    gradcam: bool = True, progress: Progress = None) -> AttributionResult:
    """Attributions of one normalised image (1 x 3 x 32 x 32) for each method, plus Grad-CAM per stage.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> r = attribute_image(m, b.x[:1], "resnet8", "x", label=3, methods=("Saliency",), ig_steps=4)
        >>> r.maps["Saliency"].shape, sorted(r.gradcam)  # H x W per method; one Grad-CAM map per stage
        ((32, 32), ['stage1', 'stage2', 'stage3'])
    """
    m = private_copy(model)
    dev = model_device(m)
    x = x.to(dev).float()
    with torch.no_grad():
        probs = torch.softmax(m(x), 1)[0]
    pred = int(probs.argmax())
    tgt = pred if target is None else int(target)
    res = AttributionResult(model_name)
    steps = len(methods) + (1 if gradcam else 0)
    for j, meth in enumerate(methods):
        a, delta = retry_halving(lambda ibs: _attribute(meth, m, x.clone().requires_grad_(True), target=tgt, seed=seed,
                                                        ig_steps=ig_steps, internal_batch_size=ibs),
                                 internal_batch_size)
        a = a.detach()
        if delta is not None:
            res.convergence_delta = delta
        infid = float("nan")
        if with_infidelity:
            from captum.metrics import infidelity

            g = torch.Generator(device="cpu").manual_seed(seed)

            def perturb(inp, g=g):
                noise = (0.05 * torch.randn(inp.shape, generator=g)).to(inp.device)
                return noise, inp - noise

            with torch.no_grad():
                infid = float(infidelity(m, perturb, inputs=x, attributions=a, target=tgt, n_perturb_samples=16,
                                         normalize=True))
        res.maps[meth] = a[0].sum(0).cpu().numpy()
        res.rows.append({"model": model_name, "residual": model.residual, "method": meth, "image": image_id,
                         "label": -1 if label is None else int(label), "target": tgt, "predicted": pred,
                         "prob": float(probs[tgt]), "infidelity": infid, "attr_abs_sum": float(a.abs().sum()),
                         "ig_convergence_delta": delta if delta is not None else float("nan")})
        if progress:
            progress((j + 1) / steps, f"{meth} on {model_name}")
    if gradcam:
        from captum.attr import LayerAttribution, LayerGradCam

        for s in (1, 2, 3):
            stage = m.get_submodule(f"stage{s}")
            layer = stage[len(stage) - 1]
            cam = LayerGradCam(m, layer).attribute(x, target=tgt, relu_attributions=True)
            res.gradcam[f"stage{s}"] = LayerAttribution.interpolate(cam.detach(), (32, 32), "bilinear")[0, 0].cpu().numpy()
        if progress:
            progress(1.0, f"Grad-CAM on {model_name}")
    return res


def conductance_per_block(model: CifarResNet, x: torch.Tensor, model_name: str, target: int | None = None,
                          n_steps: int = 20, internal_batch_size: int | None = 64,
                          progress: Progress = None) -> pd.DataFrame:
    """Layer conductance (Dhamdhere et al. 2018, as Captum's ``LayerConductance`` computes it) of every block at
    once, baseline the zero normalised input (the mean image).

    ``conductance``: summed over the residual branch's output F(x) (``Block.branch_output``: bn2 in
    the original unit, conv2 where no BN follows it): how much of the target
    logit's change from the baseline flows through the block's branch. In a plain net the branch is the
    only route, so it carries all of it; in a residual net the rest goes along the skip path.
    ``conductance_output``: summed over the block's output, a cut through the net, so it stays close to
    ``logit_change`` (Captum's completeness) in both kinds of net; ``branch_share`` = conductance / logit_change.

    Captum's formula for a layer with activation a(α) at the input α·x (its Gauss-Legendre α's, ``n_steps`` + 1 of
    them): Σ_j ∂logit/∂a(α_j) · (a(α_{j+1}) − a(α_j)), summed over the layer's values. Captum runs the net once per
    layer; here one forward and one backward pass over the α's read every block's branch output and output at once
    (hooks on a private copy), ``internal_batch_size`` α's a pass: the same numbers (checked against Captum in
    ``tests/analyses/test_analyses.py``), 2 x blocks times fewer passes.

    Example:
        >>> import torch
        >>> from analysis.core.common import random_sample
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 3 blocks, one per stage
        >>> b = random_sample(8, 0, torch.device("cpu"))  # x: 8 x 3 x 32 x 32 normalised, y: 8 labels
        >>> c = conductance_per_block(m, b.x[:1], "resnet8", n_steps=4)  # args: model, image 1 x 3 x 32 x 32, name
        >>> list(c["block"])
        ['stage1.block0', 'stage2.block0', 'stage3.block0']
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    m = private_copy(model)
    dev = model_device(m)
    x = x.to(dev).float()
    with torch.no_grad():
        logits = m(x)
        base_logits = m(torch.zeros_like(x))
    tgt = int(logits.argmax()) if target is None else int(target)
    total = float(logits[0, tgt] - base_logits[0, tgt])
    alphas = approximation_parameters("gausslegendre")[1](n_steps + 1)
    layers = [mod for _, blk in m.blocks() for mod in (blk.branch_output, blk)]  # per block: F(x), then the output
    seen: list[torch.Tensor] = []
    hooks = [mod.register_forward_hook(lambda _m, _i, out: seen.append(out)) for mod in layers]
    acts: list[list[torch.Tensor]] = [[] for _ in layers]
    grads: list[list[torch.Tensor]] = [[] for _ in layers]

    def run(sl: slice) -> None:
        seen.clear()
        xs = torch.cat([a * x for a in alphas[sl]]).requires_grad_(True)
        out = m(xs)[:, tgt].sum()
        if len(seen) != len(layers):  # pragma: no cover - each layer runs once per forward pass in every unit
            raise RuntimeError(f"{len(seen)} layer outputs seen for {len(layers)} layers")
        got = torch.autograd.grad(out, seen)
        for j, (a, g) in enumerate(zip(seen, got)):
            acts[j].append(a.detach())
            grads[j].append(g.detach())

    try:
        chunked(run, len(alphas), internal_batch_size or len(alphas))
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for info, _ in m.blocks():
        i = info.index
        c = []
        for j in (2 * i, 2 * i + 1):
            a, g = torch.cat(acts[j]), torch.cat(grads[j])
            c.append((g[:-1] * (a[1:] - a[:-1])).sum(0))
        c_branch, c_out = c
        rows.append({"model": model_name, "residual": model.residual, "block": info.name, "block_index": i,
                     "stage": info.stage, "downsample": info.downsample, "target": tgt,
                     "conductance": float(c_branch.sum()), "conductance_abs": float(c_branch.abs().sum()),
                     "conductance_output": float(c_out.sum()), "logit_change": total,
                     "branch_share": float(c_branch.sum()) / total if total else float("nan")})
    if progress:
        progress(1.0, f"conductance through the blocks of {model_name}")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- registry
def _images(ctx: Context, n: int) -> list[tuple[str, torch.Tensor, int | None]]:
    """(id, normalised 1x3x32x32 image, label or None): the one handed over (``_image``), else ``n``
    seeded random test images (seed + 1, so they differ from the measurement sample)."""
    p = ctx.params
    if p.get("_image") is not None:
        return [(p["image_key"] or "image", p["_image"], p.get("_label"))]
    if ctx.batch is not None:
        return [(f"batch/{i}", ctx.batch.x[i:i + 1].cpu(), int(ctx.batch.y[i])) for i in range(min(n, len(ctx.batch)))]
    split = D.load_split("test", ctx.data)
    idx = D.sample_indices(len(split), n, ctx.seed + 1)
    return [(f"test/{i}", D.normalize(split.images[i:i + 1]), int(split.labels[i])) for i in idx.tolist()]


def _run_attributions(ctx: Context) -> dict[str, pd.DataFrame]:
    p = ctx.params
    images = _images(ctx, p["n_images"])
    rows, maps, cams = [], [], []
    for j, (key, x, label) in enumerate(images):
        res = attribute_image(ctx.model, x, ctx.name, image_id=key, label=label, methods=p["methods"], seed=ctx.seed,
                              ig_steps=p["ig_steps"], gradcam=p["gradcam"],
                              progress=lambda f, msg, j=j: ctx.tick((j + f) / len(images), msg))
        rows.append(res.frame())
        if p["maps"]:
            maps.append(res.map_frame(key))
        if p["gradcam"]:
            cams.append(res.gradcam_frame(key))
    out = {"attributions": pd.concat(rows, ignore_index=True)}
    if maps:
        out["attribution_maps"] = pd.concat(maps, ignore_index=True)
    if cams:
        out["gradcam"] = pd.concat(cams, ignore_index=True)
    return out


def _run_conductance(ctx: Context) -> dict[str, pd.DataFrame]:
    key, x, _ = _images(ctx, 1)[0]
    c = conductance_per_block(ctx.model, x, ctx.name, n_steps=ctx.params["n_steps"], progress=ctx.progress)
    c.insert(1, "image", key)
    return {"conductance": c}


def conductance_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: the range of the branch share and how many blocks lie outside 0-1, with what that means."""
    rows = []
    for m, g in df.groupby("model", sort=False):
        share = g["branch_share"].dropna()
        if share.empty:
            continue
        out = int(((share < 0) | (share > 1)).sum())
        rows.append({"topic": "conductance", "model": m, "sentence": (
            f"{m}: the branch's share runs from {share.min():.2f} to {share.max():.2f}; {out} of {len(share)} blocks lie "
            "outside 0-1" + (" (there the branch and the skip path push the logit in opposite directions)." if out
                             else "."))})
    return pd.DataFrame(rows, columns=["topic", "model", "sentence"])


def _combine_conductance(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    d = tables.get("conductance")
    return {} if d is None or d.empty else {"conductance_findings": conductance_findings(d)}


_PAGE = "pages/4_Attributions.py"
_IMAGE = {"image_key": None, "_image": None, "_label": None}
register(Analysis(
    name="attributions", title="Captum attributions and their infidelity", run=_run_attributions,
    work=lambda p: len(p["methods"]),
    page=_PAGE, order=40,
    defaults={"n_images": 4, "methods": ("Saliency", "IntegratedGradients", "DeepLift"), "ig_steps": 50,
              "gradcam": False, "maps": False, **_IMAGE},
    choices={"methods": METHODS},
    quick={"n_images": 1, "methods": ("Saliency", "IntegratedGradients"), "ig_steps": 8, "gradcam": True, "maps": True},
    tables=(Table("attributions", ("model", "residual", "method", "image", "label", "target", "predicted", "prob",
                                   "infidelity", "attr_abs_sum")),
            Table("attribution_maps", ("model", "image", "method", "y", "x", "attribution")),
            Table("gradcam", ("model", "image", "stage", "y", "x", "gradcam")))))
register(Analysis(
    name="conductance", title="Conductance through each block's branch (Captum LayerConductance)",
    work=lambda p: p["n_steps"],
    run=_run_conductance, page=_PAGE, order=41, defaults={"n_steps": 20, **_IMAGE},
    quick={"n_steps": 4}, combine=_combine_conductance,
    tables=(Table("conductance", ("model", "image", "residual", "block", "block_index", "conductance",
                                  "conductance_output", "logit_change", "branch_share")),
            Table("conductance_findings", ("topic", "model", "sentence")))))
