"""The 6n+2 CIFAR-10 networks of He et al. 2015 (section 4.2), plain and residual.

A net is a 3x3 conv (16 filters) + BN + ReLU stem, three stages of ``n`` basic blocks with 16, 32 and
64 filters (the first block of stages 2 and 3 has stride 2), global average pooling and a 10-way
linear layer: ``6n + 2`` weighted layers. A block computes

    y = ReLU(F(x) + lam * shortcut(x)),   F = conv3x3-BN-ReLU-conv3x3-BN

with ``lam = 1`` for a residual net and ``lam = 0`` for a plain net. Where the shape changes, the
shortcut is option A (stride-2 subsampling and zero-padded channels, no parameters) or option B (1x1
projection + BN). With option A a plain net and a residual net of one depth have exactly the same
parameters, so one set of weights can be run either way.

Every experiment in ResLens changes *how the forward pass runs*, never the module: skipping blocks,
scaling shortcuts and starting from a cached block input are arguments of :meth:`CifarResNet.forward`
and :meth:`CifarResNet.forward_from`. A cached model can therefore serve every analysis at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (16, 32, 64)
NAME_RE = re.compile(r"^(plain|resnet)(\d+)(b?)$")

# Shortcut scales: one float for every block, or one per block (sequence or {block index: lam}).
Scale = Union[None, float, Sequence[float], Mapping[int, float]]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def option_a(x: torch.Tensor, out_planes: int, stride: int) -> torch.Tensor:
    """Option A shortcut: subsample by ``stride`` and zero-pad the channels (no parameters)."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    extra = out_planes - x.shape[1]
    if extra:
        # Pad equally before and after the existing channels, as in the common CIFAR implementations.
        x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
    return x


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, then the (scaled) shortcut is added, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, residual: bool, option: str) -> None:
        super().__init__()
        self.in_planes, self.planes, self.stride = in_planes, planes, stride
        self.residual, self.option = residual, option
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        # One ReLU module per use (never shared, never in-place): Captum's DeepLift overrides
        # nn.ReLU modules, and a reused or functional ReLU would silently break it.
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.projection: nn.Module | None = None
        if residual and option == "B" and self.downsample:
            self.projection = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    @property
    def downsample(self) -> bool:
        """True where the block changes the shape (stride 2 and more channels)."""
        return self.stride != 1 or self.in_planes != self.planes

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function F(x): after the second BN, before the addition and ReLU."""
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path: identity, option A's subsample-and-pad, or option B's projection."""
        if self.projection is not None:
            return self.projection(x)
        if self.downsample:
            return option_a(x, self.planes, self.stride)
        return x

    def forward(self, x: torch.Tensor, scale: float | None = None, skip: bool = False) -> torch.Tensor:
        if skip:
            # A deleted block leaves only its skip path (option A's pad where the shape changes).
            return self.shortcut(x)
        lam = (1.0 if self.residual else 0.0) if scale is None else float(scale)
        out = self.branch(x)
        if lam == 1.0:
            out = out + self.shortcut(x)
        elif lam != 0.0:
            out = out + lam * self.shortcut(x)
        return self.relu2(out)


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
    """A 6n+2 CIFAR network; ``residual=False`` gives the plain net with the same parameters."""

    def __init__(self, depth: int, residual: bool = True, option: str = "A", num_classes: int = 10,
                 width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 56, 110, ...), not {depth}")
        if option not in ("A", "B"):
            raise ValueError(f"shortcut option must be 'A' or 'B', not {option!r}")
        self.depth, self.residual, self.option = depth, residual, option
        self.n = (depth - 2) // 6
        widths = [width * m // 16 for m in STAGE_WIDTHS]
        self.stem = nn.Sequential()
        self.stem.add_module("conv", conv3x3(3, widths[0]))
        self.stem.add_module("bn", nn.BatchNorm2d(widths[0]))
        self.stem.add_module("relu", nn.ReLU())
        infos, in_planes = [], widths[0]
        for s, planes in enumerate(widths, start=1):
            stage = nn.Sequential()
            for b in range(self.n):
                stride = 2 if (s > 1 and b == 0) else 1
                stage.add_module(f"block{b}", BasicBlock(in_planes, planes, stride, residual, option))
                infos.append(BlockInfo(len(infos), f"stage{s}.block{b}", s, in_planes, planes, stride))
                in_planes = planes
            self.add_module(f"stage{s}", stage)
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
        return f"{'resnet' if self.residual else 'plain'}{self.depth}{'b' if self.option == 'B' else ''}"

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def block(self, i: int) -> BasicBlock:
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
        """The stem's output, which is the input of block 0."""
        return self.stem(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Global average pooling and the linear classifier."""
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

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
        ``scale``: shortcut factor lam (None keeps 1 for residual nets, 0 for plain nets)."""
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


def parse_name(name: str) -> tuple[int, bool, str]:
    """'resnet56' -> (56, True, 'A'); 'plain20' -> (20, False, 'A'); a trailing 'b' selects option B."""
    m = NAME_RE.match(name.strip().lower())
    if not m:
        raise ValueError(f"unknown model name {name!r}: use plainD or resnetD with D = 6n+2 (e.g. resnet56)")
    depth = int(m.group(2))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"{name!r}: depth {depth} is not of the form 6n+2 (8, 14, 20, 32, 44, 56, 110, ...)")
    return depth, m.group(1) == "resnet", "B" if m.group(3) else "A"


def build_model(name: str, width: int = 16) -> CifarResNet:
    """Build a freshly initialised net by name (plain20, resnet56, resnet110, resnet56b, ...)."""
    depth, residual, option = parse_name(name)
    return CifarResNet(depth, residual=residual, option=option, width=width)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
