"""The architecture of a net as data: two orthogonal choices (the unit and the shortcut) on the 6n+2 family, and
the one name grammar that writes and reads them (:class:`Arch`, :func:`parse_name`). No PyTorch here: the zoo,
the dashboard and the CLI read names without building a net. :mod:`analysis.core.models` builds the modules.

Names (one grammar, parsed by :func:`parse_name` and written by :attr:`Arch.name`)::

    {plain|resnet}{depth}[b][-bottleneck][-{unit}][-{shortcut}]
    bottleneck: 1x1-3x3-1x1 blocks with 4x expansion, depth 9n+2                (default: two 3x3, depth 6n+2)
    unit:      preact (full-preact) | relupreact | bnafter | relubefore          (default: original)
    shortcut:  conv1x1 | scale{lam} | scale{lam}f | gate{b_g} | shortgate{b_g} | dropout[{p}]
                                                                                  (default: identity)
    b:         option B projections where the shape changes                       (default: option A)

``gate{b_g}``: exclusive gating, g(x) = sigmoid(1x1 conv(x) + b_g) on F and 1 - g(x) on the shortcut;
``shortgate{b_g}``: shortcut-only gating, 1 - g(x) on the shortcut, F as it is; ``dropout``: a Bernoulli mask that
keeps each value of the shortcut with probability 1 - p (p = 0.5 unless given) while training, the expectation
1 - p at evaluation (He et al. 2016, section 3.1 and Table 1). A negative gate bias keeps its sign: ``gate-6``.

e.g. ``resnet56``, ``resnet56b``, ``resnet110-preact``, ``resnet56-bnafter``, ``resnet110-scale0.5``,
``resnet110-scale0.5f``, ``resnet56-conv1x1``, ``resnet56-gate-6``, ``resnet56-shortgate-6``, ``resnet56-dropout``,
``resnet164-bottleneck``, ``resnet164-bottleneck-preact``, ``plain20``.
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
TOKEN_RE = re.compile(r"-((?:short)?gate-?\d*\.?\d+|[a-z0-9.]+)")  # a gate's bias keeps its minus sign
SCALE_RE = re.compile(r"^scale(\d*\.?\d+)(f?)$")
GATE_RE = re.compile(r"^(short)?gate(-?\d*\.?\d+)$")
DROPOUT_RE = re.compile(r"^dropout(\d*\.?\d+)?$")
GATES = ("exclusive", "shortcut-only")
GRAMMAR = ("{plain|resnet}{depth}[b][-bottleneck][-preact|-relupreact|-bnafter|-relubefore]"
           "[-conv1x1|-scale{lam}|-scale{lam}f|-gate{b_g}|-shortgate{b_g}|-dropout], depth = 6n+2, or 9n+2 with "
           "-bottleneck (e.g. resnet56, resnet56b, resnet110-preact, resnet110-scale0.5f, resnet56-conv1x1, "
           "resnet56-gate-6, resnet56-dropout, resnet164-bottleneck-preact)")



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
    bottleneck: bool = False  # 1x1-3x3-1x1 blocks with 4x expansion (three layers a block: depth 9n+2)
    gate: str = ""  # "exclusive" or "shortcut-only" gating (He et al. 2016, Fig. 2 c-d); "" for none
    gate_bias: float = 0.0  # b_g, the gate's initial bias
    dropout: float = 0.0  # the probability that dropout zeroes a value of the shortcut while training

    @property
    def layers_per_block(self) -> int:
        return 3 if self.bottleneck else 2

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // (3 * self.layers_per_block)

    def __post_init__(self) -> None:
        k = 3 * self.layers_per_block
        if self.depth < k + 2 or (self.depth - 2) % k:
            if self.bottleneck:
                raise ValueError(f"a bottleneck net's depth must be 9n+2 with n >= 1 (11, 29, 56, 110, 164, ...), "
                                 f"not {self.depth}")
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), not {self.depth}")
        if self.gate not in ("",) + GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)} or none, not {self.gate!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"a dropout probability lies in [0, 1), not {self.dropout}")
        kinds = [self.option != "A", self.lam != 1.0, bool(self.gate), self.dropout > 0]
        if sum(kinds) > 1:
            raise ValueError("one shortcut at a time: option B, conv1x1, a scale, a gate or dropout")
        if not self.residual and (self.gate or self.dropout):
            raise ValueError("a plain net has no shortcut to gate or drop")
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
        if self.gate == "exclusive":
            base += f", exclusive gating: F times g(x), shortcut times 1 - g(x), g = sigmoid(1x1 conv + b_g), b_g = {_fmt(self.gate_bias)} at init"
        elif self.gate:
            base += f", shortcut-only gating: shortcut times 1 - g(x), g = sigmoid(1x1 conv + b_g), b_g = {_fmt(self.gate_bias)} at init"
        if self.dropout:
            base += f", dropout {_fmt(self.dropout)} on the shortcut while training (times {_fmt(1 - self.dropout)} at evaluation)"
        if self.lam != 1.0:
            base += f", scaled by {_fmt(self.lam)}" + (f", F scaled by {_fmt(1 - self.lam)}" if self.scale_branch else "")
        return base

    @property
    def shortcut_token(self) -> str:
        """'identity', 'B', 'conv1x1', 'scale0.5', 'scale0.5f', 'gate-6', 'shortgate-6' or 'dropout' (the name's
        shortcut part)."""
        if self.gate:
            return ("gate" if self.gate == "exclusive" else "shortgate") + _fmt(self.gate_bias)
        if self.dropout:
            return "dropout" + ("" if self.dropout == 0.5 else _fmt(self.dropout))
        if self.lam != 1.0:
            return f"scale{_fmt(self.lam)}" + ("f" if self.scale_branch else "")
        return {"A": "identity", "B": "B", "conv1x1": "conv1x1"}[self.option]

    @property
    def name(self) -> str:
        n = f"{'resnet' if self.residual else 'plain'}{self.depth}{'b' if self.option == 'B' else ''}"
        if self.bottleneck:
            n += "-bottleneck"
        if self.unit != "original":
            n += f"-{UNIT_TOKEN[self.unit]}"
        if self.option == "conv1x1":
            n += "-conv1x1"
        if self.lam != 1.0 or self.gate or self.dropout:
            n += "-" + self.shortcut_token
        return n

    @property
    def is_variant(self) -> bool:
        """True for anything but the original unit with identity option-A shortcuts."""
        return (self.unit != "original" or self.option != "A" or self.lam != 1.0 or self.bottleneck or bool(self.gate)
                or self.dropout > 0)

    @property
    def block_kind(self) -> str:
        return "bottleneck" if self.bottleneck else "basic"

    def describe(self) -> dict:
        return {"depth": self.depth, "residual": self.residual, "block": self.block_kind, "unit": self.unit,
                "shortcut": self.shortcut_token, "shortcut_option": self.option, "lambda": self.lam,
                "branch_scale": self.branch_scale, "gate": self.gate or "none", "gate_bias": self.gate_bias,
                "shortcut_dropout": self.dropout}

    @property
    def branch_scale(self) -> float:
        return 1.0 - self.lam if self.scale_branch else 1.0


def parse_name(name: str) -> Arch:
    """'resnet56' -> Arch(56); 'resnet110-preact' -> full pre-activation; 'resnet56-scale0.5f' -> lam 0.5
    on the shortcut and 0.5 on F; 'resnet56-gate-6' -> exclusive gating with b_g = -6; 'resnet164-bottleneck' ->
    bottleneck blocks; a 'b' after the depth selects option B. See the module docstring.

    Example:
        >>> a = parse_name("resnet56-gate-6")
        >>> a.gate, a.gate_bias, a.name
        ('exclusive', -6.0, 'resnet56-gate-6')
        >>> parse_name("resnet164-preact-bottleneck").name  # any order in, one canonical order out
        'resnet164-bottleneck-preact'
    """
    m = NAME_RE.match(name.strip().lower())
    if not m:
        raise ValueError(f"unknown model name {name!r}: use {GRAMMAR}")
    tokens = TOKEN_RE.findall(m.group(4))
    if "".join("-" + t for t in tokens) != m.group(4):  # pragma: no cover - NAME_RE admits only such suffixes
        raise ValueError(f"unknown model name {name!r}: use {GRAMMAR}")
    depth = int(m.group(2))
    bottleneck = "bottleneck" in tokens
    k = 9 if bottleneck else 6
    if depth < k + 2 or (depth - 2) % k:
        forms = "9n+2 (11, 29, 56, 110, 164, ...) for a bottleneck net" if bottleneck else \
            "6n+2 (8, 14, 20, 32, 44, 56, 110, ...)"
        raise ValueError(f"{name!r}: depth {depth} is not of the form {forms}")
    residual = m.group(1) == "resnet"
    kw: dict = {"unit": "original", "option": "B" if m.group(3) else "A"}
    seen_unit = seen_shortcut = False
    for tok in tokens:
        if tok == "bottleneck":
            if tokens.count(tok) > 1:
                raise ValueError(f"{name!r} says bottleneck twice")
            continue
        if tok in UNIT_TOKENS:
            if seen_unit:
                raise ValueError(f"{name!r} names two units; use one of {', '.join(UNIT_TOKENS)}")
            kw["unit"], seen_unit = UNIT_TOKENS[tok], True
            continue
        sm, gm, dm = SCALE_RE.match(tok), GATE_RE.match(tok), DROPOUT_RE.match(tok)
        if not (tok == "conv1x1" or sm or gm or dm):
            raise ValueError(f"{name!r}: unknown part {tok!r}; names are {GRAMMAR}")
        if seen_shortcut or kw["option"] == "B":
            raise ValueError(f"{name!r} names two shortcuts; use one of b, conv1x1, scale{{lam}}, scale{{lam}}f, "
                             f"gate{{b_g}}, shortgate{{b_g}}, dropout")
        seen_shortcut = True
        if tok == "conv1x1":
            kw["option"] = "conv1x1"
        elif sm:
            kw["lam"], kw["scale_branch"] = float(sm.group(1)), bool(sm.group(2))
        elif gm:
            kw["gate"], kw["gate_bias"] = "shortcut-only" if gm.group(1) else "exclusive", float(gm.group(2))
        else:
            kw["dropout"] = float(dm.group(1)) if dm.group(1) else 0.5
            if not 0.0 < kw["dropout"] < 1.0:
                raise ValueError(f"{name!r}: a dropout probability lies between 0 and 1, not {kw['dropout']:g}")
    if not residual and seen_shortcut:
        raise ValueError(f"{name!r}: a plain net has no shortcut; drop '-{tokens[-1]}'")
    return Arch(depth, residual=residual, bottleneck=bottleneck, **kw)
