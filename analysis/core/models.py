"""The 6n+2 CIFAR-10 networks of He et al. 2015 (section 4.2) and the unit and shortcut variants of
He et al. 2016 ("Identity Mappings in Deep Residual Networks", Fig. 2 and Fig. 4), plain and residual.

A net is a 3x3 conv (16 filters) + BN + ReLU stem, three stages of ``n`` blocks with 16, 32 and 64
filters (the first block of stages 2 and 3 has stride 2), global average pooling and a 10-way linear
layer: ``6n + 2`` weighted layers. Two orthogonal choices describe a block.

The **unit** says where BN and ReLU sit (He et al. 2016, Fig. 4 a-e); with s(x) the shortcut:

=================  =========================================================  ======================
unit               y =                                                        after the last block
=================  =========================================================  ======================
original           ReLU(BN(conv(ReLU(BN(conv(x))))) + lam*s(x))               -
bn-after-add       ReLU(BN(conv(ReLU(BN(conv(x)))) + lam*s(x)))               -
relu-before-add    ReLU(BN(conv(ReLU(BN(conv(x)))))) + lam*s(x)               -
relu-preact        BN(conv(ReLU(BN(conv(ReLU(x)))))) + lam*s(x)               ReLU
full-preact        conv(ReLU(BN(conv(ReLU(BN(x)))))) + lam*s(x)               BN, ReLU
=================  =========================================================  ======================

In the pre-activation units the first block of stage 1 follows the stem's BN-ReLU, so its own
pre-activation is left out (He et al. 2016, section 4: "the first activation right after conv1 and
before splitting into two paths").

The **shortcut** s(x): identity, with option A (stride-2 subsampling and zero-padded channels, no
parameters) where the shape changes; option B (1x1 projection + BN where the shape changes); or a
1x1 conv + BN on every block ("1x1 conv shortcut", He et al. 2016 Table 1). A net may be *trained with*
a constant shortcut scale ``lam`` (``scale0.5``: y = F(x) + 0.5 s(x)) and, in the second form of
Table 1, the branch scaled by ``1 - lam`` too (``scale0.5f``: y = 0.5 F(x) + 0.5 s(x)).

Two more shortcuts of He et al. 2016 (section 3.1, Fig. 2 c-d): *gating*, g(x) = sigmoid(W_g x + b_g) from a 1x1
conv of the block's input, with F times g(x) and the shortcut times 1 - g(x) (exclusive gating, ``gate{b_g}``) or the
shortcut times 1 - g(x) and F as it is (shortcut-only gating, ``shortgate{b_g}``); and *dropout* on the shortcut
(``dropout``: :class:`ShortcutDropout`).

**Bottleneck** blocks (``-bottleneck``; He et al. 2016, ResNet-164): 1x1 (reduce to 16/32/64) - 3x3 - 1x1 (expand
4x to 64/128/256), three weighted layers a block, so a net has ``9n + 2`` layers; the units place BN and ReLU around
the three convs as around the two of a basic block.

``lam = 1`` for a residual net, ``lam = 0`` for a plain net (no shortcut). With option A a plain net
and a residual net of one depth and unit have exactly the same parameters.

Names: one grammar, written and read in :mod:`analysis.core.arch`.

Every experiment in ResLens changes *how the forward pass runs*, never the module: skipping blocks,
overriding the shortcut scale and starting from a cached block input are arguments of
:meth:`CifarResNet.forward` and :meth:`CifarResNet.forward_from`. A cached model can therefore serve
every analysis at once.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence, Union

import torch
from torch import nn

from .arch import Arch, parse_name
from .blocks import Block, conv3x3
from .data import MEAN, STD

STAGE_WIDTHS = (16, 32, 64)
# Shortcut scales: one float for every block, or one per block (sequence or {block index: lam}).
Scale = Union[None, float, Sequence[float], Mapping[int, float]]


# Input normalisations by name: (mean, std) per RGB channel of an image in [0, 1].
NORMALIZATIONS = {
    "cifar10": (MEAN, STD),  # ResLens's own: the CIFAR-10 training images' (analysis.core.data, their one place)
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's, used by many public CIFAR nets
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # the net was trained on [0, 1] inputs
}


def normalization_label(mean, std) -> str:
    for name, (m, s) in NORMALIZATIONS.items():
        if all(abs(a - b) < 1e-6 for a, b in zip(list(mean) + list(std), list(m) + list(s))):
            return name
    return "mean=(" + ",".join(f"{v:g}" for v in mean) + ") std=(" + ",".join(f"{v:g}" for v in std) + ")"


class InputNorm(nn.Module):
    """Turns ResLens's inputs (normalised with the CIFAR-10 mean and std) into the normalisation the net
    was trained with: x_net = (x * std_c + mean_c - mean) / std. Identity for ResLens's own nets. Its buffers
    are not part of the state dict: the normalisation is recorded in the checkpoint's metadata and card."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1), persistent=False)
        self.mean, self.std = NORMALIZATIONS["cifar10"]
        self.identity = True

    @property
    def label(self) -> str:
        return normalization_label(self.mean, self.std)

    def set(self, mean, std) -> None:
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError("a normalisation needs three means and three positive standard deviations")
        mc, sc = NORMALIZATIONS["cifar10"]
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        scale = torch.tensor([a / b for a, b in zip(sc, self.std)]).view(1, 3, 1, 1)
        shift = torch.tensor([(a - m) / s for a, m, s in zip(mc, self.mean, self.std)]).view(1, 3, 1, 1)
        self.scale.copy_(scale.to(self.scale.device))
        self.shift.copy_(shift.to(self.shift.device))
        self.identity = self.label == "cifar10"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


@dataclass(frozen=True)
class BlockInfo:
    index: int
    name: str  # named_modules() path, e.g. "stage2.block0"
    stage: int
    in_planes: int
    planes: int
    stride: int

    @property
    def downsample(self) -> bool:
        return self.stride != 1 or self.in_planes != self.planes


class CifarResNet(nn.Module):
    """A 6n+2 CIFAR network (9n+2 with bottleneck blocks); ``residual=False`` gives the plain net with the same
    parameters."""

    def __init__(self, depth: int, residual: bool = True, option: str = "A", num_classes: int = 10,
                 width: int = 16, unit: str = "original", lam: float = 1.0, scale_branch: bool = False,
                 bottleneck: bool = False, gate: str = "", gate_bias: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = Arch(depth, residual=residual, unit=unit, option=option, lam=lam, scale_branch=scale_branch,
                         bottleneck=bottleneck, gate=gate, gate_bias=gate_bias, dropout=dropout)  # validates
        self.depth, self.residual, self.option, self.unit = depth, residual, option, unit
        self.n = self.arch.blocks_per_stage
        widths = [width * m // 16 for m in STAGE_WIDTHS]
        self.input_norm = InputNorm()
        self.stem = nn.Sequential()
        self.stem.add_module("conv", conv3x3(3, widths[0]))
        self.stem.add_module("bn", nn.BatchNorm2d(widths[0]))
        self.stem.add_module("relu", nn.ReLU())
        infos, in_planes = [], widths[0]
        for s, planes in enumerate(widths, start=1):
            stage = nn.Sequential()
            for b in range(self.n):
                stride = 2 if (s > 1 and b == 0) else 1
                block = Block(in_planes, planes, stride, residual=residual, option=option, unit=unit, lam=lam,
                              scale_branch=scale_branch, first=not infos, bottleneck=bottleneck, gate=gate,
                              gate_bias=gate_bias, dropout=dropout)
                stage.add_module(f"block{b}", block)
                infos.append(BlockInfo(len(infos), f"stage{s}.block{b}", s, in_planes=in_planes, planes=block.planes,
                                       stride=stride))
                in_planes = block.planes
            self.add_module(f"stage{s}", stage)
        # Pre-activation nets end with the activation their last addition lacks (He et al. 2016, sec. 4).
        self.post: nn.Module | None = None
        if unit == "full-preact":
            self.post = nn.Sequential()
            self.post.add_module("bn", nn.BatchNorm2d(in_planes))
            self.post.add_module("relu", nn.ReLU())
        elif unit == "relu-preact":
            self.post = nn.Sequential()
            self.post.add_module("relu", nn.ReLU())
        self.fc = nn.Linear(in_planes, num_classes)
        self.block_info: tuple[BlockInfo, ...] = tuple(infos)
        self._blocks = [self.get_submodule(i.name) for i in infos]
        for m in self.modules():  # He et al. 2015 initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ introspection
    @property
    def name(self) -> str:
        """The canonical name (:func:`parse_name` reads it back to the same architecture)."""
        return self.arch.name

    def blocks(self) -> Iterator[tuple[BlockInfo, Block]]:
        """(info, block) for every block in forward order: the public way to walk the blocks."""
        return zip(self.block_info, self._blocks)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def block(self, i: int) -> Block:
        return self._blocks[i]

    def block_names(self) -> list[str]:
        return [i.name for i in self.block_info]

    def block_index(self, block: int | str) -> int:
        if isinstance(block, str):
            names = self.block_names()
            if block not in names:
                raise KeyError(f"{block!r} is not a block of {self.name}; blocks are {names[0]} .. {names[-1]}")
            return names.index(block)
        if not 0 <= int(block) < self.num_blocks:
            raise IndexError(f"block index {block} out of range 0..{self.num_blocks - 1}")
        return int(block)

    def _skip_set(self, skip: Iterable[int | str] | None) -> frozenset[int]:
        return frozenset(self.block_index(b) for b in (skip or ()))

    def _scales(self, scale: Scale) -> list[float | None]:
        if scale is None:
            return [None] * self.num_blocks
        if isinstance(scale, (int, float)):
            return [float(scale)] * self.num_blocks
        if isinstance(scale, Mapping):
            return [None if i not in scale else float(scale[i]) for i in range(self.num_blocks)]
        scale = list(scale)
        if len(scale) != self.num_blocks:
            raise ValueError(f"{len(scale)} shortcut scales given for {self.num_blocks} blocks")
        return [None if s is None else float(s) for s in scale]

    # ------------------------------------------------------------------ forward passes
    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's output, which is the input of block 0 (after the net's own input normalisation)."""
        return self.stem(self.input_norm(x))

    @property
    def normalization(self) -> str:
        """The input normalisation the net was trained with ("cifar10" for ResLens's own nets)."""
        return self.input_norm.label

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The final activation of pre-activation nets, global average pooling and the linear classifier."""
        if self.post is not None:
            h = self.post(h)
        return self.fc(h.mean((2, 3)))  # global average pooling (vmap-friendly form of adaptive_avg_pool2d)

    def run_blocks(self, h: torch.Tensor, start: int = 0, stop: int | None = None,
                   skip: Iterable[int | str] | None = None, scale: Scale = None,
                   collect: bool = False, order: Sequence[int] | None = None
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks at positions ``start .. stop-1`` on ``h``; with ``collect`` also return the
        input of each. ``order`` (a permutation of block indices) says which block runs at each
        position, for the reordering experiment; skips and scales follow the block, not the position."""
        skips, scales = self._skip_set(skip), self._scales(scale)
        stop = self.num_blocks if stop is None else stop
        order = range(self.num_blocks) if order is None else order
        inputs: list[torch.Tensor] = []
        for pos in range(start, stop):
            i = order[pos]
            if collect:
                inputs.append(h)
            h = self._blocks[i](h, scale=scales[i], skip=i in skips)
        return h, inputs

    def forward(self, x: torch.Tensor, skip: Iterable[int | str] | None = None,
                scale: Scale = None) -> torch.Tensor:
        """Logits. ``skip``: blocks (indices or names) replaced by their skip path;
        ``scale``: shortcut factor lam (None keeps the trained one: 1 for residual nets, 0 for plain nets,
        lam for a ``scale{lam}`` net; a trained branch scale 1 - lam stays as it is)."""
        h, _ = self.run_blocks(self.stem_forward(x), skip=skip, scale=scale)
        return self.head(h)

    def forward_from(self, start: int, h: torch.Tensor, skip: Iterable[int | str] | None = None,
                     scale: Scale = None, order: Sequence[int] | None = None) -> torch.Tensor:
        """Logits when block ``start`` receives ``h`` (e.g. a cached input from :meth:`block_inputs`)."""
        h, _ = self.run_blocks(h, start=start, skip=skip, scale=scale, order=order)
        return self.head(h)

    def block_inputs(self, x: torch.Tensor, skip: Iterable[int | str] | None = None,
                     scale: Scale = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The input of every block (index i is block i's input) and the final feature map."""
        h, inputs = self.run_blocks(self.stem_forward(x), skip=skip, scale=scale, collect=True)
        return inputs, h


def build_model(name: str | Arch, width: int = 16) -> CifarResNet:
    """A freshly initialised net by name (plain20, resnet56, resnet110-preact, resnet56-scale0.5f, ...)."""
    a = parse_name(name) if isinstance(name, str) else name
    return CifarResNet(a.depth, residual=a.residual, option=a.option, width=width, unit=a.unit, lam=a.lam,
                       scale_branch=a.scale_branch, bottleneck=a.bottleneck, gate=a.gate, gate_bias=a.gate_bias,
                       dropout=a.dropout)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


_WEIGHTS: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes) of ``model``; computed once per
    model object (the shared models are read-only)."""
    got = _WEIGHTS.get(model)
    if got is None:
        h = hashlib.sha256()
        for k, v in sorted(model.state_dict().items()):
            t = v.detach().to("cpu").contiguous().reshape(-1)
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        got = _WEIGHTS[model] = h.hexdigest()
    return got
