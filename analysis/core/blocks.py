"""The blocks of :mod:`analysis.core.models`: the basic (two 3x3 convs) and the bottleneck (1x1-3x3-1x1) block in
every unit of He et al. 2016, their shortcuts (option A's subsample-and-pad, projections, gates, dropout) and the
addition. The module docstring of :mod:`analysis.core.models` gives the formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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



class EvalBatchNorm(nn.Module):
    """An eval-mode ``BatchNorm2d`` written as the affine map it is: x·s + (b - μ·s) with s = w / √(σ² + ε), holding
    the same parameters (``weight``, ``bias``) and buffers under the same names. The same function; its second
    derivatives are cheaper to take (BN's own double backward spends a fifth of a Hessian-vector product on
    batch-statistics terms that eval mode does not have). Made by :func:`with_eval_batchnorm` on private copies."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, getattr(bn, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.weight * torch.rsqrt(self.running_var + self.eps)
        return torch.addcmul((self.bias - self.running_mean * s)[:, None, None], x, s[:, None, None])


def with_eval_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` (a private copy: changed in place) with every BatchNorm2d replaced by its :class:`EvalBatchNorm`;
    the parameter and buffer names, and their order, stay as they were."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d) and child.affine and child.track_running_stats:
            setattr(model, name, EvalBatchNorm(child))
        else:
            with_eval_batchnorm(child)
    return model


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """The conv whose output is ``bn(conv(x))`` in eval mode: weights scaled per output channel, BN's shift as a bias."""
    s = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, bias=True, padding_mode=conv.padding_mode, device=conv.weight.device,
                    dtype=conv.weight.dtype)  # where the net is: a folded copy of a GPU net stays on the GPU
    with torch.no_grad():
        out.weight.copy_(conv.weight * s.reshape(-1, 1, 1, 1))
        out.bias.copy_(bn.bias - bn.running_mean * s + (conv.bias * s if conv.bias is not None else 0))
    return out


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` (a private copy in eval mode: changed in place) with every BN that directly follows a conv folded into
    that conv (He et al.'s stem, each block's inner convs, the branch's last conv where its BN comes before the
    addition, a projection shortcut): the same function in exact arithmetic with one pass less over the activations
    per BN. A BN after the addition (``bn-after-add``) or before a conv (pre-activation) stays. For inference only
    (the deletion sweeps): the folded convs have no BN parameters left to differentiate."""
    for mod in model.modules():
        if isinstance(mod, nn.Sequential) and isinstance(getattr(mod, "conv", None), nn.Conv2d) \
                and isinstance(getattr(mod, "bn", None), nn.BatchNorm2d):  # the stem: conv, bn, relu
            mod.conv, mod.bn = _fold(mod.conv, mod.bn), nn.Identity()
        elif isinstance(mod, Block):
            last = mod.unit in ("original", "relu-before-add", "relu-preact")
            for i in range(1, mod.k + 1):
                if i < mod.k or last:
                    setattr(mod, f"conv{i}", _fold(getattr(mod, f"conv{i}"), getattr(mod, f"bn{i}")))
                    setattr(mod, f"bn{i}", nn.Identity())
            if isinstance(mod.projection, nn.Sequential) and len(mod.projection) == 2:
                mod.projection = _fold(mod.projection[0], mod.projection[1])
    return model


class ShortcutDropout(nn.Module):
    """Dropout on the shortcut as He et al. 2016 (section 3.1, Table 1) use it: while training, each value is kept with
    probability 1 - p and *not* rescaled; at evaluation the shortcut is multiplied by its expectation 1 - p (so that a
    0.5 dropout acts like a shortcut scale of 0.5 in expectation, the paper's reading)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if self.training:
            return s * torch.empty_like(s).bernoulli_(1.0 - self.p)
        return s * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class Block(nn.Module):
    """A residual (or plain) block: its convolutions in the order the unit says, a shortcut, and the addition (module
    docstring). Basic blocks have two 3x3 convs; bottleneck blocks (He et al. 2016, ResNet-164) a 1x1 that reduces to
    ``planes``, a 3x3, and a 1x1 that expands to ``4 * planes`` channels, the stride on the first 1x1 as in the authors'
    CIFAR code.

    Parameter names are shared across units where the layer is the same (``conv1``, ``bn1``, ``conv2``, ``bn2``, and
    ``conv3``, ``bn3`` in a bottleneck), so an original-unit checkpoint loads exactly as before. With ``k`` convs,
    ``bn{k}`` is the branch's last BN in ``original``, ``relu-before-add`` and ``relu-preact``, and the BN after the
    addition in ``bn-after-add``; ``full-preact`` has ``bn0`` (on the block's input) and no ``bn{k}``; ``relu{k}`` is
    the ReLU after the addition (or before it, in ``relu-before-add``). A gated block has ``gate``, the 1x1 conv
    (with bias b_g) of g(x); a dropout shortcut has ``drop``.
    """

    expansion_bottleneck = 4

    def __init__(self, in_planes: int, planes: int, stride: int, residual: bool, option: str = "A",
                 unit: str = "original", lam: float = 1.0, scale_branch: bool = False, first: bool = False,
                 bottleneck: bool = False, gate: str = "", gate_bias: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        out_planes = planes * self.expansion_bottleneck if bottleneck else planes
        self.in_planes, self.planes, self.stride = in_planes, out_planes, stride
        self.residual, self.option, self.unit, self.bottleneck = residual, option, unit, bottleneck
        self.gate_kind = gate
        self.shortcut_scale = float(lam)  # trained-with lam (1 for identity)
        self.branch_scale = 1.0 - lam if scale_branch else 1.0
        # The first block of a pre-activation net follows the stem's BN-ReLU: no second pre-activation.
        self.preact = unit in ("relu-preact", "full-preact") and not first
        if unit == "full-preact" and self.preact:
            self.bn0 = nn.BatchNorm2d(in_planes)
        if self.preact:
            self.relu0 = nn.ReLU()
        if bottleneck:  # (in, out, kernel, stride) of conv1 .. conv3
            shapes = [(in_planes, planes, 1, stride), (planes, planes, 3, 1), (planes, out_planes, 1, 1)]
        else:
            shapes = [(in_planes, planes, 3, stride), (planes, planes, 3, 1)]
        self.k = k = len(shapes)
        for i, (ci, co, ks, st) in enumerate(shapes, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(ci, co, kernel_size=ks, stride=st, padding=ks // 2, bias=False))
            if i < k or unit != "full-preact":
                self.add_module(f"bn{i}", nn.BatchNorm2d(co))
            # One ReLU module per use (never shared, never in-place): Captum's DeepLift overrides
            # nn.ReLU modules, and a reused or functional ReLU would silently break it.
            if i < k or unit in ("original", "bn-after-add", "relu-before-add"):
                self.add_module(f"relu{i}", nn.ReLU())
        self.projection: nn.Module | None = None
        if residual and (option == "conv1x1" or (option == "B" and self.downsample)):
            self.projection = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        self.gate: nn.Conv2d | None = None
        if residual and gate:
            self.gate = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=True)
            self.gate_bias = float(gate_bias)
            nn.init.constant_(self.gate.bias, self.gate_bias)
        self.drop: ShortcutDropout | None = ShortcutDropout(dropout) if residual and dropout else None

    @property
    def downsample(self) -> bool:
        """True where the block changes the shape (stride 2 or more channels)."""
        return self.stride != 1 or self.in_planes != self.planes

    @property
    def default_lam(self) -> float:
        """The shortcut scale the block runs with unless told otherwise (0 in a plain net)."""
        return self.shortcut_scale if self.residual else 0.0

    @property
    def convs(self) -> list[nn.Conv2d]:
        """The branch's convolutions in order (two, or three in a bottleneck block)."""
        return [getattr(self, f"conv{i}") for i in range(1, self.k + 1)]

    @property
    def last_bn(self) -> nn.BatchNorm2d | None:
        """``bn{k}``: the branch's last BN (or the BN after the addition in ``bn-after-add``); None in full-preact."""
        return getattr(self, f"bn{self.k}", None)

    def branch_responses(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The responses of the block's layers, one per conv: each inner conv's output after its BN, and the last
        conv's output after its BN where one follows it (the conv itself in ``bn-after-add`` and ``full-preact``; after
        the ReLU in ``relu-before-add``). The last is F(x) before any trained branch scale or gate."""
        if self.preact:
            if self.unit == "full-preact":
                x = self.bn0(x)
            x = self.relu0(x)
        out, h = [], x
        for i in range(1, self.k):
            a = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h))
            out.append(a)
            h = getattr(self, f"relu{i}")(a)
        f = getattr(self, f"conv{self.k}")(h)
        if self.unit in ("original", "relu-before-add", "relu-preact"):
            f = self.last_bn(f)
        if self.unit == "relu-before-add":
            f = getattr(self, f"relu{self.k}")(f)
        out.append(f)
        return out

    def branch_layers(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the first layer's response, F(x)) from :meth:`branch_responses`."""
        r = self.branch_responses(x)
        return r[0], r[-1]

    def gate_value(self, x: torch.Tensor) -> torch.Tensor:
        """g(x) = sigmoid(1x1 conv(x) + b_g), one value per output position and channel (gated blocks only)."""
        return torch.sigmoid(self.gate(x))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function as it is added to the shortcut: F(x), times 1 - lam in a ``scale{lam}f`` net, times
        g(x) under exclusive gating."""
        return self.branch_from(self.branch_responses(x)[-1], x)

    def branch_from(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`branch` given the last response ``f`` of :meth:`branch_responses` on the block's input ``x``."""
        if self.branch_scale != 1.0:
            f = f * self.branch_scale
        if self.gate is not None and self.gate_kind == "exclusive":
            f = f * self.gate_value(x)
        return f

    def branch_vjp(self, x: torch.Tensor):
        """(:meth:`branch` at ``x``, without a graph; its vector-Jacobian product at ``x`` for many cotangents at once),
        from one forward pass, or None where this block's branch is not one it can write down.

        Written down for an ``original`` unit (basic or bottleneck) with every BN in eval mode and no gate: there
        F(x) = c · BN_k(conv_k(ReLU(BN_{k-1}(... ReLU(BN_1(conv_1(x))))))) is linear in everything but the ReLUs'
        masks, which one forward pass on ``x`` (N images) fixes. The returned function maps cotangents of shape
        D x N x (F's shape) to D x N x (x's shape): each conv's transpose, with its BN's scale in its weights, runs once
        on all D·N at once (``torch.nn.grad.conv2d_input``), where autograd's batched gradient (``is_grads_batched``)
        runs one per cotangent. The same numbers as autograd to float rounding (``tests/analyses/test_analyses.py``).
        """
        if type(self) is not Block or self.unit != "original" or self.gate is not None:
            return None
        bns = [getattr(self, f"bn{i}", None) for i in range(1, self.k + 1)]
        if any(not isinstance(b, nn.BatchNorm2d) or b.training or not (b.affine and b.track_running_stats)
               for b in bns):
            return None
        weights, masks, shapes = [], [], []
        with torch.no_grad():
            h = x
            for i, (conv, bn) in enumerate(zip(self.convs, bns)):
                shapes.append(tuple(h.shape[1:]))
                # "conv, then BN's scale per output channel" (and the branch scale c after the last BN) is a conv with
                # scaled weights: their transpose is the product's
                scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
                c = self.branch_scale if i == self.k - 1 else 1.0
                weights.append(conv.weight * (scale * c).view(-1, 1, 1, 1))
                a = bn(conv(h))
                if i < self.k - 1:
                    masks.append(a > 0)
                    h = getattr(self, f"relu{i + 1}")(a)
        f = a * self.branch_scale if self.branch_scale != 1.0 else a
        convs = self.convs

        @torch.no_grad()
        def vjp(g: torch.Tensor) -> torch.Tensor:
            d, n = g.shape[:2]
            g = g.flatten(0, 1)
            for i in range(self.k - 1, -1, -1):
                conv = convs[i]
                g = torch.nn.grad.conv2d_input((d * n,) + shapes[i], weights[i], g, conv.stride, conv.padding,
                                               conv.dilation, conv.groups)
                if i:
                    g = (g.view(d, n, *g.shape[1:]) * masks[i - 1]).flatten(0, 1)
            return g.view(d, n, *g.shape[1:])

        return f, vjp

    @property
    def response_names(self) -> tuple[str, ...]:
        """Module names of the responses of :meth:`branch_responses` (``conv{k}`` where no BN follows it)."""
        last = f"bn{self.k}" if self.unit in ("original", "relu-before-add", "relu-preact") else f"conv{self.k}"
        return tuple(f"bn{i}" for i in range(1, self.k)) + (last,)

    @property
    def branch_output(self) -> nn.Module:
        """The module whose output is F(x) before any trained branch scale or gate (for layer attributions)."""
        if self.unit == "relu-before-add":
            return getattr(self, f"relu{self.k}")
        return self.last_bn if self.unit in ("original", "relu-preact") else getattr(self, f"conv{self.k}")

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path as it reaches the addition, before the shortcut scale lam: identity, option A's
        subsample-and-pad, or a 1x1 projection; times 1 - g(x) in a gated block; dropout's mask (training) or
        its expectation (evaluation) in a dropout block."""
        if self.projection is not None:
            s = self.projection(x)
        elif self.downsample:
            s = option_a(x, self.planes, self.stride)
        else:
            s = x
        if self.gate is not None:
            s = s * (1.0 - self.gate_value(x))
        if self.drop is not None:
            s = self.drop(s)
        return s

    def merge(self, f: torch.Tensor, s: torch.Tensor, lam: float) -> torch.Tensor:
        """The block's output from its branch output ``f`` and shortcut ``s``: the addition with
        shortcut scale ``lam`` and whatever the unit applies after it."""
        if lam == 1.0:
            out = f + s
        elif lam != 0.0:
            out = f + lam * s
        else:
            out = f
        if self.unit == "original":
            return getattr(self, f"relu{self.k}")(out)
        if self.unit == "bn-after-add":
            return getattr(self, f"relu{self.k}")(self.last_bn(out))
        return out

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        """What is left of a deleted block: its shortcut as it reaches the addition (gated, or dropout's expectation),
        scaled as trained (a plain net's block becomes the identity, or option A's pad where the shape changes)."""
        if not self.residual:
            return option_a(x, self.planes, self.stride) if self.downsample else x
        s = self.shortcut(x)
        return s * self.shortcut_scale if self.shortcut_scale != 1.0 else s

    def parts(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass of the block as the net runs it, with what it passes through: (the responses of
        :meth:`branch_responses`, the branch as added :meth:`branch`, the shortcut :meth:`shortcut`, the output, equal
        to ``self(x)``). Each layer runs once (measuring a block with ``branch_responses``, ``branch`` and ``self(x)``
        ran its branch three times)."""
        rs = self.branch_responses(x)
        f, s, lam = self.branch_from(rs[-1], x), self.shortcut(x), self.default_lam
        return rs, f, s, self.merge(f, s if lam != 0.0 else f, lam)

    def forward(self, x: torch.Tensor, scale: float | None = None, skip: bool = False) -> torch.Tensor:
        if skip:
            return self.skip_path(x)
        lam = self.default_lam if scale is None else float(scale)
        f = self.branch(x)
        return self.merge(f, self.shortcut(x) if lam != 0.0 else f, lam)
