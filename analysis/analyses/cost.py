"""What a net costs: parameters, FLOPs counted by PyTorch, measured time per image, and every conv layer's
count against the textbook formula.

* ``params``: every parameter (BN scales and shifts included).
* ``flops_per_image``: PyTorch's FLOP formulas (``torch.utils.flop_counter.flop_registry``, what
  ``FlopCounterMode`` counts with) applied to every operation of one image's eval-mode forward pass: they
  count convolutions and matrix products (2 FLOPs per multiply-add) and nothing else, so the shortcut's
  additions, BN and ReLU are not in it; ``adds_per_image`` counts the shortcut additions separately
  (one per output value of every residual block; 0 in a plain net).
* ``ms_per_image``: wall time of eval-mode forward passes over ``images`` random inputs, bfloat16 autocast
  and channels_last on the CPU (float32 on CUDA), the median over ``repeats`` after a warm-up, divided by
  the number of images. Timings on a shared machine are noisy: compare nets measured in one run.
* ``conv_cost``: per 3x3 or 1x1 conv, H_out·W_out·C_in·C_out·k² multiply-adds (the notes' formula with H, W
  the *output* size; a stride-2 conv has a quarter of its input's positions) against the counter's FLOPs / 2.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ..core.common import autocast, model_device, private_copy
from ..core.arch import Arch, parse_name
from ..core.models import CifarResNet, build_model, count_params
from ..engine.registry import Analysis, Context, Table, register


class FlopCount(TorchDispatchMode):
    """Counts FLOPs with PyTorch's own formulas (``flop_registry``), per operation.

    ``FlopCounterMode`` itself also tracks modules through *global* module hooks, which fire in every thread
    of the process while it counts (many browser sessions share one); a dispatch mode is local to the thread
    that enters it, so counting here never reaches another thread's forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.by_op: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.add(packet, int(flop_registry[packet](*args, **kwargs, out_val=out)), args)
        return out

    def add(self, packet, n: int, args: tuple) -> None:
        """Count ``n`` FLOPs of one call of ``packet`` (``args``, its arguments, for a subclass that sorts by them:
        ``benchmarks/page_floor.py`` counts by dtype)."""
        self.by_op[str(packet)] = self.by_op.get(str(packet), 0) + n


def conv_costs(model: CifarResNet, model_name: str, private: bool = True) -> tuple[pd.DataFrame, int]:
    """(one row per convolution: its shape and output size, the formula's multiply-adds, the counter's FLOPs; the
    counted FLOPs of the whole forward pass of one image), from one counted forward pass: hooks around each conv read
    the counter's growth across it. The shapes are read by hooks on a private copy (hooks on the shared model would
    fire in every thread); ``private=False`` hooks ``model`` itself, for a net the caller built and no one else
    sees."""
    m = private_copy(model) if private else model
    dev = model_device(m)
    shapes: dict[str, tuple] = {}
    counted: dict[str, int] = {}
    fc = FlopCount()  # one pass of the whole net; each conv's share is the counter's growth across that conv

    def conv_flops() -> int:
        return sum(v for op, v in fc.by_op.items() if "convolution" in op)

    def before(_m, _inp, name):
        counted[name] = -conv_flops()

    def after(_m, inp, out, name):
        counted[name] += conv_flops()
        shapes[name] = (tuple(inp[0].shape), tuple(out.shape))

    convs = {name: mod for name, mod in m.named_modules() if isinstance(mod, nn.Conv2d)}
    hooks = [h for name, mod in convs.items() for h in (
        mod.register_forward_pre_hook(lambda _m, inp, name=name: before(_m, inp, name)),
        mod.register_forward_hook(lambda _m, inp, out, name=name: after(_m, inp, out, name)))]
    try:
        with torch.no_grad(), fc:
            m(torch.zeros(1, 3, 32, 32, device=dev))
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, mod in convs.items():
        if name not in shapes:
            continue
        (_, c_in, h_in, w_in), (_, c_out, h_out, w_out) = shapes[name]
        k = mod.kernel_size[0]
        formula = h_out * w_out * c_in * c_out * k * k
        rows.append({"model": model_name, "layer": name, "H_in": h_in, "W_in": w_in, "H_out": h_out, "W_out": w_out,
                     "C_in": c_in, "C_out": c_out, "k": k, "stride": mod.stride[0], "formula_macs": formula,
                     "formula_macs_input_size": h_in * w_in * c_in * c_out * k * k, "counted_flops": counted[name],
                     "counted_macs": counted[name] // 2, "match": counted[name] == 2 * formula})
    return pd.DataFrame(rows), fc.total


def shortcut_adds(model: CifarResNet) -> int:
    """Additions the shortcuts add to one image's forward pass (the counter does not count them)."""
    if not model.residual:
        return 0
    dev = model_device(model)
    total = 0
    with torch.no_grad():
        inputs, _ = model.block_inputs(torch.zeros(1, 3, 32, 32, device=dev))
        for info, blk in model.blocks():
            total += blk.shortcut(inputs[info.index]).numel()
    return total


@torch.no_grad()
def time_per_image(model: CifarResNet, images: int = 256, repeats: int = 5, seed: int = 0, warmup: int = 2) -> float:
    """Median wall time (ms) per image of an eval-mode forward pass after ``warmup`` untimed ones (see the module
    docstring)."""
    dev = model_device(model)
    x = torch.randn(images, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(dev)
    x = x.contiguous(memory_format=torch.channels_last)
    bf16 = dev.type == "cpu"
    times = []
    for r in range(repeats + warmup):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with autocast(dev, bf16):
            model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if r >= warmup:  # warm-up passes (kernel selection, allocations) are not timed
            times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times) / images


def interleaved_rounds(models: dict[str, CifarResNet], images: int = 256, repeats: int = 5, seed: int = 0
                       ) -> dict[str, list[float]]:
    """ms per image for several nets measured in turns (net A, net B, net A, ...), ``repeats`` rounds: within a
    round the nets are measured side by side, so the ratio of two nets' times in one round is what a busy
    machine disturbs least; the spread of that ratio over the rounds says how far to trust it."""
    per: dict[str, list[float]] = {n: [] for n in models}
    # Warm-up: one untimed pass per net (a fresh net's second pass is already as fast as its sixth, measured here).
    for m in models.values():
        time_per_image(m, images=images, repeats=1, seed=seed, warmup=0)
    for _ in range(repeats):
        for n, m in models.items():
            per[n].append(time_per_image(m, images=images, repeats=1, seed=seed, warmup=0))
    return per


def interleaved_times(models: dict[str, CifarResNet], images: int = 256, repeats: int = 5, seed: int = 0
                      ) -> dict[str, float]:
    """The fastest of the rounds of :func:`interleaved_rounds` per net (the least disturbed one)."""
    return {n: min(v) for n, v in interleaved_rounds(models, images, repeats, seed).items()}


def cost(model: CifarResNet, model_name: str, images: int = 256, repeats: int = 5, seed: int = 0
         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row of totals, one row per convolution) for one net: parameters, counted FLOPs, shortcut additions,
    time per image, and every conv against the formula.

    Args:
        model: the net (only read; shapes are probed on a private copy).
        model_name: the ``model`` column.
        images: random inputs timed per forward pass (default 256).
        repeats: timed passes after two warm-ups; the median is kept (default 5).
        seed: the seed of the random inputs (default 0).

    Example:
        >>> from analysis.core.models import build_model
        >>> m = build_model("resnet8", width=8).eval()  # 7 convolutions: the stem's and two per block
        >>> totals, convs = cost(m, "resnet8", images=4, repeats=1)
        >>> int(totals["params"].iloc[0]) == sum(p.numel() for p in m.parameters()), len(convs), bool(convs["match"].all())
        (True, 7, True)
    """
    convs, flops = conv_costs(model, model_name)
    row = {"model": model_name, "residual": model.residual, "depth": model.depth, "arch": model.name,
           "params": sum(p.numel() for p in model.parameters()), "flops_per_image": flops,
           "conv_macs_per_image": int(convs["counted_macs"].sum()), "adds_per_image": shortcut_adds(model),
           "ms_per_image": time_per_image(model, images=images, repeats=repeats, seed=seed), "timed_images": images,
           "repeats": repeats, "device": str(model_device(model)),
           "precision": "bfloat16 autocast, channels_last" if model_device(model).type == "cpu" else "float32"}
    return pd.DataFrame([row]), convs


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    c, convs = cost(ctx.model, ctx.name, images=ctx.params["images"], repeats=ctx.params["repeats"], seed=ctx.seed)
    return {"cost": c, "conv_cost": convs}


# ---------------------------------------------------------------------------- basic vs bottleneck blocks
def _params_of(arch: Arch) -> int:
    """Parameters of ``arch``, counted on a built net (used for small nets only)."""
    return count_params(build_model(arch))


def equal_parameter_depth(target: int, residual: bool = True) -> int:
    """The depth 6n+2 of the basic-block net (option A, original unit) whose parameter count is nearest ``target``.
    A net's parameters grow by the same amount with every block added to each stage, so two counts give the line.

    Example:
        >>> equal_parameter_depth(1_661_274)  # resnet164-bottleneck's: resnet104 has 1,630,746, resnet110 1,727,962
        104
    """
    p1, p2 = _params_of(Arch(8, residual=residual)), _params_of(Arch(14, residual=residual))
    n = max(1, round(1 + (target - p1) / (p2 - p1)))
    return 6 * min((n - 1, n, n + 1), key=lambda k: abs(p1 + (k - 1) * (p2 - p1) - target) if k >= 1 else float("inf")) + 2


def unit_costs(bottleneck: str = "resnet164-bottleneck", images: int = 64, repeats: int = 5, seed: int = 0,
               device: torch.device | str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Basic against bottleneck blocks (He et al. 2016 use bottlenecks for ResNet-164): the bottleneck net, the
    basic-block net of the same depth (or the nearest 6n+2 below it) and the basic-block net with the nearest
    parameter count, each freshly built with the same unit and shortcut (costs do not depend on trained weights).
    Returns (one row per net: parameters, counted FLOPs, conv multiply-adds, ms per image measured side by side in
    interleaved rounds, each as a ratio to the bottleneck net's; one row per convolution of the three nets against
    the formula).

    Example:
        >>> t, convs = unit_costs("resnet29-bottleneck", images=2, repeats=1)
        >>> list(t["model"]), bool(convs["match"].all())
        (['resnet29-bottleneck', 'resnet26', 'resnet20'], True)
    """
    b = parse_name(bottleneck)
    if not b.bottleneck:
        raise ValueError(f"{bottleneck!r} has basic blocks; name a bottleneck net (e.g. resnet164-bottleneck)")
    basic = dataclasses.replace(b, bottleneck=False, depth=8)
    depth_eq = max(8, b.depth - (b.depth - 2) % 6)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = {b.name: build_model(b).to(dev).eval()}
        depth_p = equal_parameter_depth(count_params(models[b.name]), residual=b.residual)
        nets = {"bottleneck": b, "basic, equal depth": dataclasses.replace(basic, depth=depth_eq),
                "basic, equal parameters": dataclasses.replace(basic, depth=depth_p)}
        for a in nets.values():
            if a.name not in models:
                models[a.name] = build_model(a).to(dev).eval()
    times = interleaved_times({n: m.to(memory_format=torch.channels_last) for n, m in models.items()},
                              images=images, repeats=repeats, seed=seed)
    rows, convs = [], []
    for pairing, a in nets.items():
        m = models[a.name]
        cv, flops = conv_costs(m, a.name, private=False)  # nets built here, for this measurement only
        convs.append(cv)
        rows.append({"pairing": pairing, "model": a.name, "block": a.block_kind, "depth": a.depth,
                     "blocks": m.num_blocks, "params": count_params(m),
                     "flops_per_image": flops,
                     "conv_macs_per_image": int(cv["counted_macs"].sum()), "ms_per_image": times[a.name],
                     "conv_layers": len(cv), "conv_formula_match": bool(cv["match"].all()), "timed_images": images,
                     "rounds": repeats, "device": str(dev),
                     "precision": "bfloat16 autocast, channels_last" if dev.type == "cpu" else "float32"})
    t = pd.DataFrame(rows)
    for col, ratio in (("params", "params_ratio"), ("flops_per_image", "flops_ratio"), ("ms_per_image", "time_ratio")):
        t[ratio] = t[col] / float(t[col].iloc[0])
    return t, pd.concat(convs, ignore_index=True).drop_duplicates(["model", "layer"])


def _run_units(ctx: Context) -> dict[str, pd.DataFrame]:
    dev = ctx.params["device"]
    if dev == "cuda" and not torch.cuda.is_available():
        raise ValueError("no GPU here: time the nets on the CPU")
    t, convs = unit_costs(ctx.params["bottleneck"], images=ctx.params["images"], repeats=ctx.params["repeats"],
                          seed=ctx.seed, device=dev)
    return {"unit_cost": t, "unit_conv_cost": convs}


register(Analysis(
    name="cost", title="Parameters, counted FLOPs, time per image, and each conv against H·W·C_in·C_out·k²",
    run=_run, needs_data=False, page="pages/9_Claims.py", order=70,
    defaults={"images": 256, "repeats": 7}, quick={"images": 4, "repeats": 3},
    tables=(Table("cost", ("model", "residual", "depth", "params", "flops_per_image", "conv_macs_per_image",
                           "adds_per_image", "ms_per_image", "timed_images", "repeats")),
            Table("conv_cost", ("model", "layer", "H_out", "W_out", "C_in", "C_out", "k", "stride", "formula_macs",
                                "counted_flops", "match")))))

register(Analysis(
    name="unit_cost", title="Basic vs bottleneck blocks at equal depth and at equal parameters: parameters, counted "
                           "FLOPs, time per image, each conv against the formula",
    run=_run_units, scope="zoo", needs_data=False, page="pages/7_Identity_mappings.py", order=86,
    defaults={"bottleneck": "resnet164-bottleneck", "images": 32, "repeats": 5, "device": "cpu"},
    quick={"bottleneck": "resnet29-bottleneck", "images": 2, "repeats": 1},
    choices={"device": ("cpu", "cuda"), "bottleneck": ("resnet29-bottleneck", "resnet56-bottleneck", "resnet110-bottleneck",
                                                       "resnet164-bottleneck", "resnet164-bottleneck-preact",
                                                       "resnet164b-bottleneck", "plain164-bottleneck")},
    tables=(Table("unit_cost", ("pairing", "model", "block", "depth", "params", "flops_per_image", "conv_macs_per_image",
                                "ms_per_image", "params_ratio", "flops_ratio", "time_ratio", "conv_formula_match")),
            Table("unit_conv_cost", ("model", "layer", "H_out", "W_out", "C_in", "C_out", "k", "stride", "formula_macs",
                                     "counted_flops", "match")))))
