"""The constructed solution (He et al. 2015, section 1): a deeper net made of a trained shallower one plus added
blocks that compute the identity, so that it computes exactly what the shallower net computes.

In each stage the trained blocks keep their places and the new blocks follow them (the first block of stages 2
and 3, which changes the shape, is always a trained one). A new block computes the identity on what it receives:

=================  ================================================================================================
block              how it is made the identity
=================  ================================================================================================
residual, original  the branch's last BN has zero scale and shift: F(x) = 0, y = ReLU(0 + x) = x, since x >= 0
                    (every block of an original-unit net receives a ReLU's output)
relu-before-add,    the branch's last BN has zero scale and shift: F(x) = 0, y = x
relu-preact
bn-after-add        the second conv is zero (F(x) = 0) and the BN after the addition passes its input through:
                    y = ReLU(BN(x)) = x
full-preact         the second conv is zero: F(x) = 0, y = x
bottleneck          as above with the third conv and its BN (``bn3``, ``conv3``) in place of the second
1x1-conv shortcut   also its projection: a 1x1 identity convolution and a BN that passes its input through
plain, original     both convolutions are Dirac (identity) kernels and both BNs pass their input through:
                    y = ReLU(ReLU(x)) = x, exact on the post-ReLU inputs a plain block receives
=================  ================================================================================================

A BN passes its input through with scale 1, shift 0, running mean 0 and running variance 1 - eps, so that
(x - 0) / sqrt(var + eps) = x up to float rounding. Not defined: nets trained with a shortcut scale λ (a zero
branch leaves y = λx, not x), gated or dropout shortcuts (y = (1 - g(x)) x or (1 - p) x), plain nets of another unit
(ResLens has none), and plain bottleneck nets (the 1x1 reduction cannot pass its input through).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .blocks import Block
from .models import CifarResNet, build_model


class ConstructionRefused(ValueError):
    """The construction is not defined for this net; the message says why."""


def pass_through(bn: nn.BatchNorm2d) -> None:
    """Make an eval-mode BN compute the identity (up to float rounding)."""
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


def dirac(conv: nn.Conv2d) -> None:
    """A convolution that returns its input (same channels in and out, stride 1)."""
    with torch.no_grad():
        nn.init.dirac_(conv.weight)


def make_identity(block: Block) -> None:
    """Set a new block's weights so that it computes the identity on the inputs it receives (module docstring)."""
    if block.downsample:
        raise ConstructionRefused("a block that changes the shape cannot compute the identity")
    if block.projection is not None:  # the 1x1-conv shortcut on every block
        dirac(block.projection[0])
        pass_through(block.projection[1])
    if not block.residual:
        if block.bottleneck:
            raise ConstructionRefused("a plain bottleneck block cannot compute the identity: its first 1x1 conv reduces "
                                      "the channels 4x, so the input cannot pass through it")
        if block.unit != "original":
            raise ConstructionRefused(f"identity blocks are defined for plain nets of the original unit, not "
                                      f"{block.unit}")
        dirac(block.conv1)
        pass_through(block.bn1)
        dirac(block.conv2)
        pass_through(block.bn2)
        return
    with torch.no_grad():
        if block.unit in ("original", "relu-before-add", "relu-preact"):
            block.last_bn.weight.zero_()
            block.last_bn.bias.zero_()
        elif block.unit == "bn-after-add":
            block.convs[-1].weight.zero_()
            pass_through(block.last_bn)
        elif block.unit == "full-preact":
            block.convs[-1].weight.zero_()
        else:  # pragma: no cover - every unit is named above
            raise ConstructionRefused(f"no identity construction for the unit {block.unit}")


def construct_deeper(source: CifarResNet, depth: int, seed: int = 0) -> tuple[CifarResNet, list[str]]:
    """(the deeper net, the names of its new blocks): ``source``'s trained blocks in place, identity blocks after
    them in every stage. The new blocks' other weights are a fresh He initialisation (``seed``); they do not change
    the function, but a training run started from the construction begins from them.

    Example:
        >>> from analysis.core.models import build_model
        >>> small = build_model("resnet8").eval()
        >>> deep, new = construct_deeper(small, 14)
        >>> deep.name, new
        ('resnet14', ['stage1.block1', 'stage2.block1', 'stage3.block1'])
        >>> x = torch.randn(2, 3, 32, 32)
        >>> bool(torch.allclose(deep(x), small(x), atol=1e-5))
        True
    """
    a = source.arch
    if a.lam != 1.0 or a.scale_branch:
        raise ConstructionRefused(f"{a.name} was trained with a shortcut scale λ = {a.lam:g}: with its branch at zero a "
                                  "block computes λx, not x, so no added block is the identity")
    if a.gate or a.dropout:
        what = f"gated (b_g = {a.gate_bias:g})" if a.gate else f"trained with dropout {a.dropout:g} on the shortcut"
        raise ConstructionRefused(f"{a.name} is {what}: with its branch at zero a block computes "
                                  f"{'(1 - g(x)) x' if a.gate else f'{1 - a.dropout:g} x'}, not x, so no added block "
                                  "is the identity")
    k = 3 * a.layers_per_block
    if depth < a.depth or (depth - 2) % k:
        raise ConstructionRefused(f"the deeper net needs a depth of the form {k}n+2 of at least {a.depth}, not {depth}")
    target = dataclasses.replace(a, depth=depth)  # validates the new architecture
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        deep = build_model(target)
    deep = deep.to(next(source.parameters()).device)
    state = deep.state_dict()
    n_old = a.blocks_per_stage
    for k, v in source.state_dict().items():  # the stem, the head, the final BN and every trained block
        parts = k.split(".")
        if parts[0].startswith("stage") and int(parts[1][len("block"):]) >= n_old:
            continue
        state[k] = v.clone()
    deep.load_state_dict(state, strict=True)
    if not source.input_norm.identity:
        deep.input_norm.set(source.input_norm.mean, source.input_norm.std)
    new = []
    for info, blk in deep.blocks():
        if int(info.name.split("block")[1]) >= n_old:
            make_identity(blk)
            new.append(info.name)
    return deep.eval(), new
