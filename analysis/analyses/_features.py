"""What the depth analyses read off a net: each readout point's features.

Readout points: the stem's output (point -1, "stem") and each block's output (point i, the block's name). A point's
features are its activation average-pooled to :data:`POOL` x :data:`POOL` positions per channel (C·16 values); the
global average (C values, what the net's own head reads) is their mean over the 16 cells. Activations are computed
in chunks with bfloat16 autocast on the CPU, on a folded and fused copy (:func:`features_model`; float32 on a GPU),
and pooled in float32.

Memory: the *training* images' features (``train_images`` of them, a parameter) are kept, computed once per run and
model and shared (``Context.share``) by the readout and recovery analyses, which fit their linear maps on them. The
*test* images go through the net in chunks (one chunk's activations at a time). What the readouts,
input recovery and CKA read off a test chunk (:func:`test_points`: each point's pooled features, the net's head read
through the skip path from it, CKA's HSIC matrices) is computed once and shared when it fits in
:data:`KEEP_TEST_BYTES` (resnet56 at the sidebar's 500 images: 33 MB), so one pass serves the three; for larger
samples each analysis streams the images itself, and nothing kept grows with the number of test images beyond one
number per image and point.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core import data as D
from ..core.common import autocast, model_device
from ..core.models import CifarResNet
from ..engine.context import Context
from ._hsic import centred_gram, hsic_matrices
from ._prefix import inference_copy

POOL = 4
KEEP_TEST_BYTES = 64 * 2 ** 20  # the most bytes of a model's test chunks (all of them together) kept and shared


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


@dataclass
class TestChunk:
    """What the readout points give on one chunk of the test sample: ``pooled[j]`` is point j - 1's features (n x
    C·POOL², float32, CPU: :func:`pool`) and ``head[j]`` the net's logits (n x classes, float32, CPU) when the net's
    own head reads point j - 1 through the skip path (every later block deleted); ``hsic``: the chunk's (unbiased,
    biased) HSIC matrices over every pair of points (:func:`analysis.analyses._hsic.hsic_matrices` of the points'
    :func:`~analysis.analyses._hsic.centred_gram`), for CKA with minibatches of :data:`CHUNK` images; None in a chunk
    computed for one analysis alone."""

    sl: slice
    pooled: list[torch.Tensor]
    head: list[torch.Tensor]
    hsic: tuple[torch.Tensor, torch.Tensor] | None = None


CHUNK = 250  # test images per chunk of :func:`test_points`


def point_dims(model: CifarResNet) -> list[int]:
    """Each readout point's number of pooled features (C·POOL²): the stem's output, then each block's."""
    info = model.block_info
    return [c * POOL * POOL for c in [info[0].in_planes] + [b.planes for b in info]]


def keeps_test_points(ctx: Context) -> bool:
    """Whether :func:`test_points` keeps the test sample's chunks (they fit in :data:`KEEP_TEST_BYTES`)."""
    model = ctx.model
    dims = point_dims(model)
    return len(ctx.sample()) * (sum(dims) + model.fc.out_features * len(dims)) * 4 <= KEEP_TEST_BYTES


def test_points(ctx: Context, progress=None, what: str = "") -> Iterator[TestChunk]:
    """The test sample's :class:`TestChunk` s, in order. Where :func:`keeps_test_points`, computed in one pass (with
    CKA's HSIC matrices) and shared by the analyses of this model and sample (readout, recovery and CKA); otherwise
    computed afresh on each call, one chunk at a time, without the HSIC matrices."""
    model, b = features_model(ctx), ctx.sample()
    if not keeps_test_points(ctx):
        yield from _test_chunks(model, b.x, progress, what, hsic=False)
        return
    yield from ctx.share("test_points", lambda: list(_test_chunks(model, b.x, progress, what, hsic=True)))


def _test_chunks(model: CifarResNet, x: torch.Tensor, progress, what: str, hsic: bool) -> Iterator[TestChunk]:
    """:class:`TestChunk` s of normalised images ``x``, one chunk computed per step (lazily): only one chunk's
    activations exist at a time (in the autocast dtype; block j's input for j < num_blocks, then the last block's
    output)."""
    dev, n_blocks = model_device(model), model.num_blocks
    starts = list(range(0, len(x), CHUNK))
    for k, s in enumerate(starts):
        xb = x[s:s + CHUNK].to(dev).contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(dev, dev.type == "cpu"):
            inputs, last = model.block_inputs(xb)
            acts = inputs + [last]
            heads = [(model.head(h) if j == n_blocks else model.forward_from(j, h, skip=range(j, n_blocks)))
                     .float().cpu() for j, h in enumerate(acts)]
            pair = hsic_matrices([centred_gram(h).cpu() for h in acts]) if hsic and len(xb) >= 4 else None
            pooled = [pool(h).cpu() for h in acts]
        del inputs, last, acts
        yield TestChunk(slice(s, s + len(xb)), pooled, heads, pair)
        if progress:
            progress((k + 1) / len(starts), f"{what}: test images {min(s + CHUNK, len(x)):,} of {len(x):,}")


def point_stage(name: str) -> int:
    return 0 if name == "stem" else int(name[len("stage")])
