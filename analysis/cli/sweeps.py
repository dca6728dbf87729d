"""Long sweeps as lists of independent items, for ``python -m analysis landscape|deletion`` (one process, or
sharded across ``torchrun`` ranks, resumable): the same rows the dashboard's analyses produce.

* landscape: every (alpha, beta) grid point of every model is an item (or a chunk of ``points_per_pass``
  points evaluated together);
* deletion: every (model, k, trial) is an item; the blocks of each trial are drawn up front with the same
  seeded streams as ``deletion.delete_random`` (seed * 1000 + k), so the rows equal the dashboard's.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ..engine import distributed as dd
from ..core.common import eval_sample
from ..analyses.deletion import PrefixCache, deletable_blocks
from ..analyses.landscape import Perturbable, filter_normalized_direction, grid, grid_losses
from ..core.zoo import load_pretrained


def _key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Lazy:
    """Per-rank models, samples and prefix caches, made the first time an item needs them."""

    def __init__(self, device: torch.device, samples: int, seed: int, data) -> None:
        self.device, self.samples, self.seed, self.data = device, samples, seed, data
        self.models, self.caches, self.dirs, self.nets, self._batch = {}, {}, {}, {}, None

    def model(self, name: str):
        if name not in self.models:
            self.models[name] = load_pretrained(name, device=self.device)
        return self.models[name]

    def batch(self):
        if self._batch is None:
            self._batch = eval_sample(self.samples, self.seed, self.device, self.data)
        return self._batch

    def cache(self, name: str) -> PrefixCache:
        if name not in self.caches:
            self.caches[name] = PrefixCache(self.model(name), self.batch())
        return self.caches[name]

    def perturbable(self, name: str) -> Perturbable:
        if name not in self.nets:
            self.nets[name] = Perturbable(self.model(name))
        return self.nets[name]

    def directions(self, name: str, dims: int):
        if name not in self.dirs:
            m = self.model(name)
            self.dirs[name] = (filter_normalized_direction(m, self.seed),
                               filter_normalized_direction(m, self.seed + 1) if dims == 2 else None)
        return self.dirs[name]


def landscape_sweep(names: Sequence[str], steps: int, radius: float = 1.0, dims: int = 2, samples: int = 1000,
                    seed: int = 0, data=None, device: str | None = None, out: Path | None = None,
                    points_per_pass: int = 1, bf16: bool = True) -> tuple[pd.DataFrame | None, int]:
    """The loss landscape of each model on a steps x steps grid (or a 1-D line); returns (rows on rank 0,
    grid points skipped because a previous run had finished them)."""
    w = dd.world()
    dev = w.device(device)
    g = grid(steps, radius)
    pts = [(a, 0.0) for a in g] if dims == 1 else [(a, b) for b in g for a in g]
    items = [(n, pts[s:s + points_per_pass]) for n in names for s in range(0, len(pts), max(1, points_per_pass))]
    lazy = _Lazy(dev, samples, seed, data)
    config = {"what": "landscape", "names": list(names), "steps": steps, "radius": radius, "dims": dims,
              "samples": samples, "seed": seed, "bf16": bf16, "points_per_pass": points_per_pass}
    store = dd.SweepStore(out, _key(config), w) if out is not None else None

    def work(i: int, item) -> list[dict]:
        name, chunk = item
        m = lazy.model(name)
        d1, d2 = lazy.directions(name, dims)
        res = grid_losses(lazy.perturbable(name), lazy.batch(), chunk, d1, d2, bf16=bf16,
                          points_per_pass=points_per_pass)
        return [{"model": name, "residual": m.residual, "dims": dims, "alpha": a, "beta": b, "loss": loss,
                 "error_pct": err, "images": samples, "seed": seed, "direction": "random",
                 "normalization": m.normalization} for (a, b), (loss, err) in zip(chunk, res)]

    results, skipped = dd.run_sweep(items, work, store, w)
    if results is None:
        return None, skipped
    return pd.DataFrame([row for part in results for row in part]), skipped


def deletion_sweep(names: Sequence[str], ks: Sequence[int], trials: int, samples: int = 1000, seed: int = 0,
                   data=None, device: str | None = None, out: Path | None = None) -> tuple[pd.DataFrame | None, int]:
    """Random block deletion for each model, k and trial (the rows of ``deletion.delete_random``)."""
    w = dd.world()
    dev = w.device(device)
    lazy = _Lazy(dev, samples, seed, data)
    items = []
    for n in names:
        m = load_pretrained(n, device="cpu")  # block layout only; the rank's copy is loaded when needed
        pool = deletable_blocks(m)
        for k in ks:
            if k > len(pool):
                continue
            rng = random.Random(seed * 1000 + k)
            for t in range(1 if k == 0 else trials):
                items.append((n, k, t, sorted(rng.sample(pool, k))))
    config = {"what": "deletion", "names": list(names), "ks": list(ks), "trials": trials, "samples": samples,
              "seed": seed}
    store = dd.SweepStore(out, _key(config), w) if out is not None else None

    def work(i: int, item) -> dict:
        name, k, t, chosen = item
        m, cache = lazy.model(name), lazy.cache(name)
        err = cache.error_pct(chosen[0] if chosen else 0, skip=set(chosen))
        return {"model": name, "residual": m.residual, "k": k, "trial": t,
                "blocks": " ".join(m.block_info[i].name for i in chosen), "error_pct": err, "images": samples,
                "normalization": m.normalization}

    results, skipped = dd.run_sweep(items, work, store, w)
    return (pd.DataFrame(results) if results is not None else None), skipped
