"""A folded inference copy's convolutions fused with what follows them, for the deletion sweeps on the CPU.

In a bfloat16 forward pass of a CIFAR ResNet on this CPU a third of the time is not the convolutions: resnet56's
ReLUs take 29 % and the shortcut additions 10 % (PyTorch's profiler, 250 images, BN already folded), because each
is one more pass over an activation that the 16-channel convolutions produce about as fast. oneDNN applies both
inside the convolution (a post-op: ``torch.ops.mkldnn._convolution_pointwise``, what ``torch.compile`` uses on the
CPU), so :func:`fuse_for_inference` replaces

* every conv that a ReLU follows (the stem's; a block's inner convs, once their BN is folded) by conv + ReLU, and
* in an ``original``-unit block the last conv, the addition of the shortcut and the ReLU after it by one call,

where the op exists and the copy runs on the CPU; elsewhere (another build, a GPU) :class:`FusedConv` runs the same
steps one by one. The fused addition adds in float32 before rounding the sum to bfloat16 once, where the separate
steps round the conv's output first: the same function up to bfloat16 rounding. Only for copies that run whole
blocks (:class:`FusedBlock` refuses to give a branch's inner responses); ``benchmarks/deletion_prefix.py`` times it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block


def _pointwise():
    """oneDNN's fused convolution, or None where this PyTorch build lacks it."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return None
        return torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None


class FusedConv(nn.Module):
    """A conv (BN already folded into it) with the ReLU after it and, optionally, a tensor added before that ReLU:
    ``relu(conv(x) + other)``, in one oneDNN call for bfloat16 inputs on the CPU."""

    def __init__(self, conv: nn.Conv2d, relu: bool = True) -> None:
        super().__init__()
        self.conv, self.relu = conv, relu
        self.op = _pointwise()

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv
        w = c.weight
        if self.op is not None and x.device.type == "cpu" and w.dtype == torch.bfloat16 and c.groups == 1:
            x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            b = None if c.bias is None else c.bias.to(torch.bfloat16)
            args = (list(c.padding), list(c.stride), list(c.dilation), c.groups)
            unary = "relu" if self.relu else "none"
            if other is None:
                return self.op(x, w, b, *args, unary, [None], "")
            other = other.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            return self.op.binary(x, other, w, b, *args, "add", 1.0, unary if self.relu else None, [None], "")
        y = c(x)
        if other is not None:
            y = y + other
        return F.relu(y) if self.relu else y


class FusedBlock(Block):
    """An ``original``-unit block of a folded copy whose convs are :class:`FusedConv`: ``forward`` and ``skip_path``
    as :class:`~analysis.core.blocks.Block`'s, nothing that reads the branch's inner responses."""

    def forward(self, x: torch.Tensor, scale: float | None = None, skip: bool = False) -> torch.Tensor:
        if skip:
            return self.skip_path(x)
        lam = self.default_lam if scale is None else float(scale)
        h = x
        for i in range(1, self.k):
            h = getattr(self, f"conv{i}")(h)  # conv + ReLU
        s = None
        if lam != 0.0:
            s = self.shortcut(x)
            s = s if lam == 1.0 else lam * s
        return getattr(self, f"conv{self.k}")(h, s)  # conv, + λ·s(x), ReLU

    def branch_responses(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError("a fused inference copy runs whole blocks only; measure responses on the model")


def fusable(block: Block) -> bool:
    """Whether :func:`fuse_for_inference` fuses ``block``: an ``original`` unit with its BNs folded, no branch scale
    or exclusive gate between the last conv and the addition."""
    if type(block) is not Block or block.unit != "original":
        return False
    folded = all(isinstance(getattr(block, f"bn{i}", None), nn.Identity) for i in range(1, block.k + 1))
    return folded and block.branch_scale == 1.0 and not (block.gate is not None and block.gate_kind == "exclusive")


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """``model``, a folded private copy (:func:`~analysis.core.blocks.fold_batchnorm`), changed in place: the stem's
    conv and ReLU fused, and each :func:`fusable` block made a :class:`FusedBlock`. Other blocks stay as they are."""
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Sequential) and isinstance(getattr(stem, "bn", None), nn.Identity) \
            and isinstance(getattr(stem, "relu", None), nn.ReLU):
        stem.conv, stem.relu = FusedConv(stem.conv), nn.Identity()
    for mod in list(model.modules()):
        if isinstance(mod, Block) and fusable(mod):
            for i in range(1, mod.k):
                setattr(mod, f"conv{i}", FusedConv(getattr(mod, f"conv{i}")))
                setattr(mod, f"relu{i}", nn.Identity())
            setattr(mod, f"conv{mod.k}", FusedConv(getattr(mod, f"conv{mod.k}")))
            setattr(mod, f"relu{mod.k}", nn.Identity())
            mod.__class__ = FusedBlock
    return model
