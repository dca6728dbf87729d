"""How long an analysis will take here, before it runs: the seconds measured per block at its defaults
(``costs.json``, written by ``python benchmarks/costs.py`` on the machine named in it), scaled to this device by
the time of one forward pass measured here, to the run's images and parameters, and corrected by what the runs of
this process actually took. The law in the number of blocks comes from two depths (t = c·b^e): a deletion sweep grows
faster than the depth, a forward pass with it.

    estimate = c[analysis] x blocks^e[analysis] x images / images_at_defaults x work(params) / work(defaults)
               x (forward time here / forward time where costs.json was measured) x correction[analysis, device]

Only an estimate (the page says "about"); a machine busy with other work is slower.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import torch

from .context import DEFAULT_SAMPLES
from .registry import Analysis

COSTS = Path(__file__).with_name("costs.json")
_lock = threading.Lock()
_forward: dict[str, float] = {}  # device -> seconds per image and block of a forward pass, measured here
_correction: dict[tuple[str, str], float] = {}  # (analysis, device) -> measured / estimated, over this process's runs


def _table() -> dict:
    try:
        return json.loads(COSTS.read_text())
    except (OSError, ValueError):
        return {}


def forward_seconds(device: str) -> float:
    """Seconds per image and block of an eval-mode forward pass on ``device`` (bfloat16 autocast on a CPU, as the
    analyses run), measured once per process on a freshly initialised resnet20 (64 images, best of 3)."""
    with _lock:
        if device in _forward:
            return _forward[device]
    from ..core.common import autocast
    from ..core.models import build_model

    dev = torch.device(device)
    m = build_model("resnet20").to(dev).eval()
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(dev)
    best = float("inf")
    with torch.no_grad(), autocast(dev, dev.type == "cpu"):
        for _ in range(3):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            m(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            best = min(best, time.perf_counter() - t)
    rate = best / (64 * m.num_blocks)
    with _lock:
        _forward[device] = rate
    return rate


def _scale(a: Analysis, samples: int, params: dict) -> float:
    """The run's images over the images at the defaults (1 for an analysis that does not read the test sample)."""
    if "n_images" in a.defaults or not a.needs_data:  # attributions: one image or a few, whatever the sample
        return 1.0
    if a.defaults.get("images") is not None:
        ref = min(int(a.defaults["images"]), DEFAULT_SAMPLES)
        return min(int(params.get("images") or ref), samples) / max(1, ref)
    return samples / DEFAULT_SAMPLES


def estimate(a: Analysis, blocks: int, samples: int, params: dict, device: str) -> float | None:
    """Seconds ``a`` is expected to take on a net of ``blocks`` blocks (None where nothing was measured)."""
    t = _table()
    law = t.get("analyses", {}).get(a.name)
    ref = t.get("forward_s_per_image_block")
    if not isinstance(law, dict) or not ref:
        return None
    work = 1.0
    if a.work is not None:
        base = a.work(a.defaults)
        work = a.work(params) / base if base else 1.0
    here = forward_seconds(device) / ref
    with _lock:
        corr = _correction.get((a.name, device), 1.0)
    return law["c"] * blocks ** law["e"] * _scale(a, samples, params) * work * here * corr


def observe(a: Analysis, blocks: int, samples: int, params: dict, device: str, seconds: float) -> None:
    """A run took ``seconds``: later estimates of ``a`` on this device lean toward what was measured."""
    est = estimate(a, blocks, samples, params, device)
    if not est or seconds <= 0:
        return
    with _lock:
        old = _correction.get((a.name, device), 1.0)
        _correction[(a.name, device)] = old * (seconds / est) ** 0.5  # halfway, in log terms, toward the last run


def words(seconds: float) -> str:
    """'about 40 s', 'about 3 min'."""
    if seconds < 90:
        return f"about {max(1, round(seconds / 5) * 5 if seconds > 20 else round(seconds))} s"
    return f"about {round(seconds / 60)} min"
