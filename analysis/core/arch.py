"""The architecture of a net as data: two orthogonal choices (the unit and the shortcut) on the 6n+2 family, and
the one name grammar that writes and reads them (:class:`Arch`, :func:`parse_name`). No PyTorch here: the zoo,
the dashboard and the CLI read names without building a net. :mod:`analysis.core.models` builds the modules.

Names (one grammar, parsed by :func:`parse_name` and written by :attr:`Arch.name`)::

    {plain|resnet}{depth}[b][-{unit}][-{shortcut}]
    unit:      preact (full-preact) | relupreact | bnafter | relubefore          (default: original)
    shortcut:  conv1x1 | scale{lam} | scale{lam}f                                (default: identity)
    b:         option B projections where the shape changes                       (default: option A)

e.g. ``resnet56``, ``resnet56b``, ``resnet110-preact``, ``resnet56-bnafter``, ``resnet110-scale0.5``,
``resnet110-scale0.5f``, ``resnet56-conv1x1``, ``plain20``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = ("original", "bn-after-add", "relu-before-add", "relu-preact", "full-preact")
UNIT_TOKENS = {"bnafter": "bn-after-add", "relubefore": "relu-before-add", "relupreact": "relu-preact",
               "preact": "full-preact"}
UNIT_TOKEN = {v: k for k, v in UNIT_TOKENS.items()}
OPTIONS = ("A", "B", "conv1x1")
NAME_RE = re.compile(r"^(plain|resnet)(\d+)(b?)((?:-[a-z0-9.]+)*)$")
SCALE_RE = re.compile(r"^scale(\d*\.?\d+)(f?)$")
GRAMMAR = ("{plain|resnet}{depth}[b][-preact|-relupreact|-bnafter|-relubefore][-conv1x1|-scale{lam}|-scale{lam}f], "
           "depth = 6n+2 (e.g. resnet56, resnet56b, resnet110-preact, resnet110-scale0.5f, resnet56-conv1x1)")



def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Arch:
    """Everything that defines a net's architecture; ``name`` is its canonical name."""

    depth: int
    residual: bool = True
    unit: str = "original"
    option: str = "A"  # shortcut where it is a module: "A" (identity, zero-pad), "B" (projection), "conv1x1"
    lam: float = 1.0  # the shortcut scale the net is trained with
    scale_branch: bool = False  # the branch is scaled by 1 - lam (He et al. 2016 Table 1, second form)

    def __post_init__(self) -> None:
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), not {self.depth}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.option not in OPTIONS:
            raise ValueError(f"shortcut option must be 'A', 'B' or 'conv1x1', not {self.option!r}")
        if not self.residual and (self.lam != 1.0 or self.scale_branch or self.option == "conv1x1"):
            raise ValueError("a plain net has no shortcut to scale or convolve")
        if self.scale_branch and self.lam == 1.0:
            raise ValueError("scale{lam}f scales the branch by 1 - lam: lam = 1 would remove the branch")

    @property
    def shortcut(self) -> str:
        """A human-readable description of the shortcut."""
        if not self.residual:
            return "none (plain)"
        base = {"A": "identity (option A)", "B": "identity, projection where the shape changes (option B)",
                "conv1x1": "1x1 conv + BN on every block"}[self.option]
        if self.lam != 1.0:
            base += f", scaled by {_fmt(self.lam)}" + (f", F scaled by {_fmt(1 - self.lam)}" if self.scale_branch else "")
        return base

    @property
    def shortcut_token(self) -> str:
        """'identity', 'B', 'conv1x1', 'scale0.5' or 'scale0.5f' (the name's shortcut part)."""
        if self.lam != 1.0:
            return f"scale{_fmt(self.lam)}" + ("f" if self.scale_branch else "")
        return {"A": "identity", "B": "B", "conv1x1": "conv1x1"}[self.option]

    @property
    def name(self) -> str:
        n = f"{'resnet' if self.residual else 'plain'}{self.depth}{'b' if self.option == 'B' else ''}"
        if self.unit != "original":
            n += f"-{UNIT_TOKEN[self.unit]}"
        if self.option == "conv1x1":
            n += "-conv1x1"
        if self.lam != 1.0:
            n += f"-scale{_fmt(self.lam)}" + ("f" if self.scale_branch else "")
        return n

    @property
    def is_variant(self) -> bool:
        """True for anything but the original unit with identity option-A shortcuts."""
        return self.unit != "original" or self.option != "A" or self.lam != 1.0

    def describe(self) -> dict:
        return {"depth": self.depth, "residual": self.residual, "unit": self.unit, "shortcut": self.shortcut_token,
                "shortcut_option": self.option, "lambda": self.lam, "branch_scale": self.branch_scale}

    @property
    def branch_scale(self) -> float:
        return 1.0 - self.lam if self.scale_branch else 1.0


def parse_name(name: str) -> Arch:
    """'resnet56' -> Arch(56); 'resnet110-preact' -> full pre-activation; 'resnet56-scale0.5f' -> lam 0.5
    on the shortcut and 0.5 on F; a 'b' after the depth selects option B. See the module docstring."""
    m = NAME_RE.match(name.strip().lower())
    if not m:
        raise ValueError(f"unknown model name {name!r}: use {GRAMMAR}")
    depth = int(m.group(2))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"{name!r}: depth {depth} is not of the form 6n+2 (8, 14, 20, 32, 44, 56, 110, ...)")
    residual = m.group(1) == "resnet"
    unit, option, lam, scale_branch = "original", "B" if m.group(3) else "A", 1.0, False
    seen_unit = seen_shortcut = False
    for tok in [t for t in m.group(4).split("-") if t]:
        if tok in UNIT_TOKENS:
            if seen_unit:
                raise ValueError(f"{name!r} names two units; use one of {', '.join(UNIT_TOKENS)}")
            unit, seen_unit = UNIT_TOKENS[tok], True
        elif tok == "conv1x1" or SCALE_RE.match(tok):
            if seen_shortcut or option == "B":
                raise ValueError(f"{name!r} names two shortcuts; use one of b, conv1x1, scale{{lam}}, scale{{lam}}f")
            seen_shortcut = True
            if tok == "conv1x1":
                option = "conv1x1"
            else:
                sm = SCALE_RE.match(tok)
                lam, scale_branch = float(sm.group(1)), bool(sm.group(2))
        else:
            raise ValueError(f"{name!r}: unknown part {tok!r}; names are {GRAMMAR}")
    if not residual and seen_shortcut:
        raise ValueError(f"{name!r}: a plain net has no shortcut; drop '-{m.group(4).split('-')[-1]}'")
    return Arch(depth, residual=residual, unit=unit, option=option, lam=lam, scale_branch=scale_branch)
