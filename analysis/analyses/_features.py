"""What the depth analyses read off a net: each readout point's features.

Readout points: the stem's output (point -1, "stem") and each block's output (point i, the block's name). A point's
features are its activation average-pooled to :data:`POOL` x :data:`POOL` positions per channel (C·16 values); the
global average (C values, what the net's own head reads) is their mean over the 16 cells. Activations are computed
in chunks with bfloat16 autocast on the CPU, on a folded and fused copy (:func:`features_model`; float32 on a GPU),
and pooled in float32.

Memory: the *training* images' features (``train_images`` of them, a parameter) are kept, computed once per run and
model and shared (``Context.share``) by the readout and recovery analyses, which fit their linear maps on them. The
*test* images are streamed (:func:`stream`): one chunk's activations at a time, so nothing kept grows with the number
of test images beyond one number per image and point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core import data as D
from ..core.common import autocast, model_device
from ..core.models import CifarResNet
from ..engine.context import Context
from ._prefix import inference_copy

POOL = 4


@dataclass
class Features:
    """Pooled features at every readout point (``points[j]`` is point j - 1: the stem, then each block)."""

    points: list[torch.Tensor]  # each N x (C * POOL * POOL), float32, CPU
    labels: torch.Tensor  # N
    pixels: torch.Tensor  # N x 3072: the normalised input images, flattened (what input recovery predicts)
    names: list[str]

    def pooled(self, j: int) -> torch.Tensor:
        """The global average of point j's channels (N x C): the mean over its POOL x POOL cells."""
        return global_pool(self.points[j])


@torch.no_grad()
def extract(model: CifarResNet, x: torch.Tensor, y: torch.Tensor, chunk: int = 250) -> Features:
    """Features of normalised images ``x`` (N x 3 x 32 x 32) at every readout point of ``model`` (only read): what the
    linear maps are fitted on, kept in memory (N x C·POOL² per point)."""
    dev = model_device(model)
    bf16 = dev.type == "cpu"
    per: list[list[torch.Tensor]] = [[] for _ in range(model.num_blocks + 1)]
    for s in range(0, len(x), chunk):
        xb = x[s:s + chunk].to(dev).contiguous(memory_format=torch.channels_last)
        with autocast(dev, bf16):
            inputs, last = model.block_inputs(xb)
        for j, h in enumerate(inputs + [last]):  # block i's input is the stem's (i = 0) or block i - 1's output
            per[j].append(pool(h).cpu())
    return Features(points=[torch.cat(p) for p in per], labels=y.cpu(), pixels=x.flatten(1).float().cpu(),
                    names=["stem"] + model.block_names())


def features_model(ctx: Context) -> CifarResNet:
    """The net the depth analyses read features from: on the CPU the deletion sweeps' inference copy (BN folded,
    bfloat16 conv weights, each conv fused with its ReLU and an original unit's addition:
    :func:`analysis.analyses._prefix.inference_copy`), the same function up to bfloat16 rounding and shared by the
    analyses of one model and sample; on a GPU the model itself (float32). Against the unfolded model in the same
    autocast, on the four default nets and 500 test images: 1.45x faster for readout, recovery and CKA together
    (20.5 → 14.1 s), the readouts' errors within 0.8 points (0.14 on average), CKA within 0.0024, R² within 0.016 (a
    fifth of that point's 95 % interval, plain56's stem; 0.003 at every other point)."""
    if model_device(ctx.model).type != "cpu":
        return ctx.model
    return ctx.share("inference_copy", lambda: inference_copy(ctx.model))


def train_features(ctx: Context, n: int) -> Features:
    """Features of ``n`` seeded random training images (shared by the analyses of this run and model)."""
    def make() -> Features:
        model = features_model(ctx)
        if ctx.batch is not None:  # a run on given images (tests on tiny nets): they stand in for the training set
            b = ctx.batch
            return extract(model, b.x[:n], b.y[:n])
        x, y = train_images(ctx, n)
        return extract(model, x, y)

    return ctx.share(f"train_features_{n}", make)


def train_images(ctx: Context, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded random training images (normalised) and their labels: drawn once per workspace and shared by every
    model's features, as the test sample is (the training split is listed and read once, not once per model)."""
    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        split = D.load_split("train", ctx.data)
        idx = D.sample_indices(len(split), n, ctx.seed + 11)  # another draw than any test sample
        return D.normalize(split.images[idx]), split.labels[idx]

    return ctx.shared.get(("train_images", n, ctx.seed, ctx.data), draw)


def pool(h: torch.Tensor) -> torch.Tensor:
    """A point's features: its activation (N x C x H x W) average-pooled to POOL x POOL cells, flattened, float32."""
    return F.adaptive_avg_pool2d(h.float(), POOL).flatten(1)


def global_pool(features: torch.Tensor) -> torch.Tensor:
    """The global average per channel (N x C) of pooled features (N x C·POOL²)."""
    return features.view(len(features), -1, POOL * POOL).mean(2)


@torch.no_grad()
def stream(model: CifarResNet, x: torch.Tensor, visit: Callable[[slice, list[torch.Tensor]], None],
           chunk: int = 250, progress=None, what: str = "") -> None:
    """Run normalised images ``x`` through ``model`` in chunks; for each chunk call ``visit(sl, acts)`` with the
    activations at every readout point (``acts[j]`` is point j - 1, in the autocast dtype; block j's input for
    j < num_blocks, the last block's output for j = num_blocks). Only one chunk's activations exist at a time."""
    dev = model_device(model)
    starts = list(range(0, len(x), chunk))
    for k, s in enumerate(starts):
        xb = x[s:s + chunk].to(dev).contiguous(memory_format=torch.channels_last)
        with autocast(dev, dev.type == "cpu"):
            inputs, last = model.block_inputs(xb)
            visit(slice(s, s + len(xb)), inputs + [last])
        if progress:
            progress((k + 1) / len(starts), f"{what}: test images {min(s + chunk, len(x)):,} of {len(x):,}")


def point_stage(name: str) -> int:
    return 0 if name == "stem" else int(name[len("stage")])
