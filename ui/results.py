"""Cached results: every analysis through one door, ``results(name, models, settings, **params)``.

A page hands over the sidebar's settings and the analysis' parameters; the cache key is built here
(analysis, model, sample size, seed, device, data root and every parameter whose name does not start
with "_"; those carry unhashable inputs such as an image tensor, identified by another parameter).
Each model's result is cached on its own, so adding a model to the sidebar computes only that model.
The models are shared and read-only; the analyses never change them (tests prove it for each one).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
import streamlit as st
import torch

from analysis.core import data as D
from analysis.core.common import Batch, eval_sample, random_sample
from analysis.analyses.deletion import PrefixCache
from analysis.engine.registry import Context, get, run_one
from analysis.engine.store import ResultStore, weights_sha256
from analysis.core.train import evaluate_error
from analysis.core.zoo import arch_of, available, load_card

from .render import with_bar
from .session import Settings, arch_name, friendly, get_model, is_residual, uploads


# ---------------------------------------------------------------------------- samples
@st.cache_resource(show_spinner="Reading the test images…", max_entries=8)
def _batch(samples: int, seed: int, device: str, root: str) -> Batch:
    return eval_sample(samples, seed, torch.device(device), data=root)


def batch(s: Settings, samples: int | None = None) -> Batch:
    return _batch(samples or s.samples, s.seed, s.device, root=s.root)


@st.cache_resource(show_spinner=False, max_entries=8)
def _prefix(name: str, samples: int, seed: int, device: str, root: str) -> PrefixCache:
    return PrefixCache(get_model(name, device), _batch(samples, seed, device, root=root))


# ---------------------------------------------------------------------------- one door for every analysis
def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _key(params: dict) -> tuple:
    return tuple(sorted((k, _freeze(v)) for k, v in params.items() if not k.startswith("_")))


def _context(analysis: str, name: str, samples: int, seed: int, device: str, root: str, params: dict,
             foreground: bool = True) -> Context:
    dev = torch.device(device)
    if foreground:
        def sampler(n: int, random_input: bool) -> Batch:
            return random_sample(n, seed, dev) if random_input else _batch(n, seed, device, root=root)
        cache = None
        prefix = lambda: _prefix(name, samples, seed, device=device, root=root)  # noqa: E731
    else:  # a background job touches no Streamlit call: everything is resolved here, in the foreground
        b = _batch(samples, seed, device, root=root)
        cache = _prefix(name, samples, seed, device=device, root=root)
        sampler, prefix = None, (lambda: cache)
    return Context(name=name, model=get_model(name, device), arch=arch_name(name), device=dev, seed=seed,
                   samples=samples, data=root, params=params, prefix_cache=prefix, sampler=sampler,
                   batch=None if foreground else b)


def store() -> ResultStore:
    """The on-disk results (``$RESLENS_RESULTS``, read on each call): a restarted server shows what an
    earlier one computed."""
    return ResultStore()


@st.cache_data(show_spinner=False, max_entries=1024)
def _model_result(analysis: str, name: str, weights: str, samples: int, seed: int, device: str, root: str,
                  key: tuple, _params: dict) -> dict[str, pd.DataFrame]:
    inputs = {"model": name, "weights": weights, "samples": samples, "seed": seed, "device": device, "root": root,
              "params": key}
    got = prefetcher().take((analysis, name, samples, seed, device, root, key))
    if got is None:
        got = store().get(analysis, inputs)
        if got is not None:
            return got
        a = get(analysis)
        ctx = _context(analysis, name, samples, seed=seed, device=device, root=root, params=_params)

        def go(progress):
            ctx.progress = progress
            return run_one(a, ctx)

        got = with_bar(f"{a.title}: {name}…", go)
    store().put(analysis, inputs, got)
    return got


@st.cache_data(show_spinner=False, max_entries=64)
def _zoo_result(analysis: str, names: tuple[str, ...], weights: tuple[str, ...], key: tuple,
                _params: dict) -> dict[str, pd.DataFrame]:
    inputs = {"models": dict(zip(names, weights)), "params": key}
    got = store().get(analysis, inputs)
    if got is None:
        got = run_one(get(analysis), Context(name="all", names=names, params=_params))
        store().put(analysis, inputs, got)
    return got


def weights(name: str, device: str) -> str:
    """sha256 of a model's weights (the zoo's or an upload's): part of every result's key."""
    return weights_sha256(get_model(name, device))


def weights_id(name: str, device: str) -> str:
    """The same identity without loading the model where a file already names it: an upload's bytes, or a
    zoo or imported model's safetensors file (its sha256 is in the card and checked whenever it is loaded).
    Zoo-scope analyses (e.g. the training curves of the Home page) then need no model in memory."""
    if name in uploads():
        return "upload:" + uploads()[name]["sha"]
    sha = load_card(name).get("sha256") if name in available() else None
    return "file:" + sha if sha else weights(name, device)


def results(analysis: str, names, s: Settings, **params) -> dict[str, pd.DataFrame]:
    """Every table of ``analysis`` for ``names`` (concatenated over models, plus its cross-model tables).
    A model whose run fails shows one sentence and is left out; plain nets skip residual-only analyses."""
    a = get(analysis)
    p = a.params(**params)
    if a.scope == "zoo":
        w = tuple(friendly(weights_id, n, s.device) or "" for n in names)
        out = friendly(_zoo_result, analysis, tuple(names), w, _key(p), _params=p) or {}
    else:
        parts: dict[str, list[pd.DataFrame]] = {}
        for n in names:
            if a.residual_only and not is_residual(n):
                continue
            w = friendly(weights, n, s.device)
            if w is None:
                continue
            r = friendly(_model_result, analysis, n, w, s.samples, s.seed, s.device, s.root, _key(p), _params=p)
            for k, df in (r or {}).items():
                parts.setdefault(k, []).append(df)
        out = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    if a.combine is not None and out:
        out.update(a.combine(out))
    return out


# ---------------------------------------------------------------------------- prefetch
class Prefetcher:
    """Computes likely next results on one background thread while the user looks at the page.

    Jobs call the library only (no Streamlit), on objects that are only read (a cached model, a PrefixCache),
    so they are safe beside the script threads. A job's result is handed over once, by ``take``; a job that
    failed is dropped and the work is redone in the foreground, where its error is reported properly.
    """

    def __init__(self, max_jobs: int = 256) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reslens-prefetch")
        self._jobs: dict[tuple, Future] = {}
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()
        self.max_jobs = max_jobs

    def submit(self, key: tuple, fn, *args, **kwargs) -> bool:
        """Queue ``fn(*args, **kwargs)`` unless ``key`` is queued or was already computed; True if queued."""
        with self._lock:
            if key in self._jobs or key in self._seen:
                return False
            if len(self._jobs) >= self.max_jobs:  # results nobody collected (the user went elsewhere): oldest out
                done = [k for k, f in self._jobs.items() if f.done()]
                if not done:
                    return False
                del self._jobs[done[0]]
            self._jobs[key] = self._pool.submit(fn, *args, **kwargs)
            return True

    def take(self, key: tuple):
        """The prefetched result for ``key`` (waiting for it if it is running), or None."""
        with self._lock:
            self._seen.add(key)
            fut = self._jobs.pop(key, None)
        if fut is None:
            return None
        try:
            return fut.result()
        except Exception:  # noqa: BLE001 - recomputed in the foreground, which shows the error
            return None


@st.cache_resource(show_spinner=False)
def prefetcher() -> Prefetcher:
    return Prefetcher()


def prefetch_depth() -> int:
    """How many steps ahead a slider prefetches: ``RESLENS_PREFETCH`` (0 = off; default 2)."""
    try:
        return max(0, int(os.environ.get("RESLENS_PREFETCH", "2")))
    except ValueError:
        return 2


def prefetch_key(analysis: str, name: str, s: Settings, **params) -> tuple:
    return (analysis, name, s.samples, s.seed, s.device, s.root, _key(get(analysis).params(**params)))


def prefetch(analysis: str, name: str, s: Settings, **params) -> bool:
    """Start computing ``results(analysis, [name], s, **params)`` in the background (e.g. the slider's
    likely next step); the foreground call collects it. ``RESLENS_PREFETCH=0`` turns this off
    (benchmarks/slider_prefetch.py compares the settings)."""
    if prefetch_depth() == 0:
        return False
    a = get(analysis)
    p = a.params(**params)
    key = prefetch_key(analysis, name, s, **params)
    ctx = _context(analysis, name, s.samples, seed=s.seed, device=s.device, root=s.root, params=p, foreground=False)
    return prefetcher().submit(key, run_one, a, ctx)


# ---------------------------------------------------------------------------- the zoo's cards
@st.cache_data(show_spinner=False, max_entries=8)
def zoo_table() -> pd.DataFrame:
    rows = []
    for n in available():
        c = load_card(n)
        a = arch_of(n)
        sched = c.get("schedule") or {}
        rows.append({"model": n, "depth": c["depth"], "residual": c["residual"], "unit": a.unit,
                     "shortcut": a.shortcut_token if a.residual else "none", "params": c["params"],
                     "train_error_pct": None if c.get("train_error_pct") is None else round(c["train_error_pct"], 2),
                     "test_error_pct": round(c["test_error_pct"], 2), "epochs": sched.get("epochs"),
                     "iterations": sched.get("iterations"),
                     "trained_on": "imported" if c.get("imported") else c["device"]})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_error(name: str, samples: int, seed: int, device: str, root: str) -> float:
    """Top-1 test error (%) of a model on the sidebar's sample, eval mode, bf16 autocast (as `evaluate`)."""
    b = _batch(samples, seed, device, root=root)
    split = D.load_split("test", root)
    return evaluate_error(get_model(name, device), split.images[b.indices], split.labels[b.indices],
                          device=torch.device(device))
