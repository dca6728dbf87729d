"""Cached results: every analysis through one door, ``results(name, models, settings, **params)``.

A page hands over the sidebar's settings and the analysis' parameters; the cache key is built here
(analysis, model, sample size, seed, device, data root and every parameter whose name does not start
with "_"; those carry unhashable inputs such as an image tensor, identified by another parameter).
Each model's result is cached on its own, so adding a model to the sidebar computes only that model.
The models are shared and read-only; the analyses never change them (tests prove it for each one).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
import streamlit as st
import torch

from analysis.core import data as D
from analysis.core import zoo
from analysis.core.evaluate import evaluate_error
from analysis.core.zoo import available, read_card
from analysis.engine import costs
from analysis.engine.context import Context, Workspace
from analysis.engine.keys import ResultKey
from analysis.engine.registry import get, run_one
from analysis.core.models import weights_sha256
from analysis.engine.store import ResultStore

from .render import with_bar
from .warm import release_memory
from .session import Settings, arch_name, friendly, get_model, is_residual, uploads


# ---------------------------------------------------------------------------- shared work
@st.cache_resource(show_spinner=False, max_entries=16)
def _workspace(samples: int, seed: int, device: str, root: str) -> Workspace:
    """The work that every analysis and every session shares on one sample: the test images drawn once, each
    model's cached block inputs (:meth:`Context.share`)."""
    return Workspace()


def _context(key: ResultKey, params: dict) -> Context:
    """The context of one model's run (resolved here, in the foreground: a background job calls no Streamlit)."""
    name = key.model
    return Context(name=name, model=get_model(name, key.device), arch=arch_name(name), device=torch.device(key.device),
                   seed=key.seed, samples=key.samples, data=key.root, params=params,
                   shared=_workspace(key.samples, key.seed, key.device, key.root))


def store() -> ResultStore:
    """The on-disk results (``$RESLENS_RESULTS``, read on each call): a restarted server shows what an
    earlier one computed."""
    return ResultStore()


# ---------------------------------------------------------------------------- one door for every analysis
_DONE: set[ResultKey] = set()  # results this process has computed or read (no estimate needed for them)
_DONE_LOCK = threading.Lock()


def _done(key: ResultKey) -> None:
    with _DONE_LOCK:
        _DONE.add(key)


@st.cache_data(show_spinner=False, max_entries=1024)
def _model_result(key: ResultKey, _params: dict, _i: int = 1, _n: int = 1) -> dict[str, pd.DataFrame]:
    """One model's tables; computing them shows a progress bar that says "model i of n"."""
    got = prefetcher().take(key)
    if got is None:
        got = store().get(key)
        if got is not None:
            _done(key)
            return got
        a = get(key.analysis)
        ctx = _context(key, _params)
        where = f"model {_i} of {_n}, {key.model}" if _n > 1 else key.model

        def go(progress):
            ctx.progress = lambda f, msg: progress(f, f"{where}: {msg}")
            t = time.perf_counter()
            with prefetcher().foreground():
                out = run_one(a, ctx)
            costs.observe(a, ctx.model.num_blocks, key.samples, _params, key.device, time.perf_counter() - t)
            return out

        got = with_bar(f"{a.title}: {where}…", go)  # its temporaries go back to the system when the page ends (app.py)
    store().put(key, got)
    _done(key)
    return got


def _estimate(a, todo: list[tuple[ResultKey, dict]], s: Settings) -> float | None:
    """Seconds the results not yet computed will take, from :mod:`analysis.engine.costs` (None if unknown)."""
    total = 0.0
    for key, p in todo:
        model = friendly(get_model, key.model, s.device)
        est = None if model is None else costs.estimate(a, model.num_blocks, s.samples, p, s.device)
        if est is None:
            return None
        total += est
    return total


def estimate(analysis: str, names, s: Settings, **params) -> str:
    """What computing ``analysis`` on ``names`` would take here, in words ("about 40 s"), or "" when not known."""
    a = get(analysis)
    p = a.params(**params)
    todo = [(k, p) for n in names if not (a.residual_only and not is_residual(n))
            and (k := model_key(analysis, n, s, p)) is not None]
    secs = _estimate(a, todo, s)
    return "" if secs is None else costs.words(secs)


ESTIMATE_FROM_S = 10.0  # longer than this, a page says beforehand how long it expects to take


@st.cache_data(show_spinner=False, max_entries=64)
def _zoo_result(key: ResultKey, _params: dict) -> dict[str, pd.DataFrame]:
    got = store().get(key)
    if got is None:
        got = run_one(get(key.analysis), Context(name="all", names=tuple(n for n, _ in key.models), params=_params))
        store().put(key, got)
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
    sha = read_card(name).sha256 if name in available() else None
    return "file:" + sha if sha else weights(name, device)


def model_key(analysis: str, name: str, s: Settings, params: dict) -> ResultKey | None:
    """The key of one model's result under the sidebar's settings (None when the model cannot be loaded: the
    reason is shown)."""
    w = friendly(weights, name, s.device)
    return None if w is None else ResultKey.for_model(analysis, name, w, params, s.samples, s.seed, s.device, s.root)


@st.cache_data(show_spinner=False, max_entries=256)
def _combined(analysis: str, keys: tuple[ResultKey, ...], _tables: dict) -> dict[str, pd.DataFrame]:
    """An analysis' cross-model tables (its ``combine`` step), computed once per set of results."""
    return get(analysis).combine(_tables)


def results(analysis: str, names, s: Settings, each: list[dict] | None = None, **params) -> dict[str, pd.DataFrame]:
    """Every table of ``analysis`` for ``names`` (concatenated over models, plus its cross-model tables).
    ``each``: several parameter sets (e.g. one per λ, or per k of a slider), each cached on its own, their tables
    concatenated before the cross-model step, so that adding one computes only that one. An analysis that declares
    ``atoms`` has each set split further into its parts (the gradients: one state, or one λ at initialisation), each
    cached on its own: what another request (another section, another page) already computed is not computed again.
    A model whose run fails shows one sentence and is left out; plain nets skip residual-only analyses."""
    a = get(analysis)
    sets = [a.params(**{**params, **e}) for e in (each or [{}])]
    parts: dict[str, list[pd.DataFrame]] = {}
    keys: list[ResultKey] = []
    pending: list[tuple[ResultKey, dict]] = []
    seen: set[ResultKey] = set()

    def collect(runs) -> None:
        for key, r in runs:
            if r:
                keys.append(key)
            for k, df in (r or {}).items():
                parts.setdefault(k, []).append(df)

    for p in sets:
        if a.scope == "zoo":
            w = tuple(friendly(weights_id, n, s.device) or "" for n in names)
            key = ResultKey.for_zoo(analysis, tuple(names), w, p)
            collect([(key, friendly(_zoo_result, key, _params=p))])
        else:
            for n in names:
                if a.residual_only and not is_residual(n):
                    continue
                for part in a.parts(p, friendly(get_model, n, s.device) if a.atoms else None):
                    key = model_key(analysis, n, s, part)
                    if key is not None and key not in seen:  # a part two parameter sets share: once
                        seen.add(key)
                        pending.append((key, part))
    with _DONE_LOCK:
        todo = [(k, p) for k, p in pending if k not in _DONE]
    todo = [(k, p) for k, p in todo if not store().has(k)]
    note = st.empty()
    if todo:
        secs = _estimate(a, todo, s)
        if secs is not None and secs > ESTIMATE_FROM_S:
            note.info(f"{a.title}: {len(todo)} result(s) to compute, {costs.words(secs)} on this "
                      f"{'GPU' if s.device == 'cuda' else 'CPU'} (from the time each analysis takes per block and "
                      "image, measured, and scaled to this device).")
    todo_keys = [k for k, _ in todo]
    collect([(key, friendly(_model_result, key, _params=p, _i=todo_keys.index(key) + 1 if key in todo_keys else 1,
                            _n=len(todo_keys))) for key, p in pending])
    note.empty()
    out = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    if a.combine is not None and out:
        out.update(friendly(_combined, analysis, tuple(keys), _tables=out) or {})
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
        self._jobs: dict[ResultKey, Future] = {}
        self._seen: set[ResultKey] = set()
        self._wanted: set[ResultKey] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._busy = 0  # foreground computations under way (any session)
        self.max_jobs = max_jobs

    @contextlib.contextmanager
    def foreground(self):
        """Mark a page's own computation: a queued job starts only when none is under way (it would take the
        cores from the page the user is waiting for), unless the foreground asks for that very job."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _when_idle(self, key: ResultKey, fn, *args, **kwargs):
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0 or key in self._wanted)
            self._wanted.discard(key)
        return fn(*args, **kwargs)

    def submit(self, key: ResultKey, fn, *args, **kwargs) -> bool:
        """Queue ``fn(*args, **kwargs)`` unless ``key`` is queued or was already computed; True if queued."""
        with self._lock:
            if key in self._jobs or key in self._seen:
                return False
            if len(self._jobs) >= self.max_jobs:  # results nobody collected (the user went elsewhere): oldest out
                done = [k for k, f in self._jobs.items() if f.done()]
                if not done:
                    return False
                del self._jobs[done[0]]
            self._jobs[key] = self._pool.submit(self._when_idle, key, fn, *args, **kwargs)
            return True

    def drain(self) -> None:
        """Wait until every queued job has run (a benchmark times the next page only then; jobs stay collectable)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for fut in jobs:
            try:
                fut.result()
            except Exception:  # noqa: BLE001 - take() reports nothing either; the foreground recomputes
                pass

    def take(self, key: ResultKey):
        """The prefetched result for ``key`` (waiting for it if it is running), or None."""
        with self._lock:
            self._seen.add(key)
            fut = self._jobs.pop(key, None)
        if fut is None:
            return None
        with self._idle:  # asked for: it need not wait for the foreground any more
            self._wanted.add(key)
            self._idle.notify_all()
        try:
            return fut.result()
        except Exception:  # noqa: BLE001 - recomputed in the foreground, which shows the error
            return None
        finally:
            with self._idle:
                self._wanted.discard(key)


@st.cache_resource(show_spinner=False)
def prefetcher() -> Prefetcher:
    return Prefetcher()


def prefetch_depth() -> int:
    """How many steps ahead a slider prefetches: ``RESLENS_PREFETCH`` (0 = off; default 2)."""
    try:
        return max(0, int(os.environ.get("RESLENS_PREFETCH", "2")))
    except ValueError:
        return 2


def prefetch_key(analysis: str, name: str, s: Settings, **params) -> ResultKey | None:
    return model_key(analysis, name, s, get(analysis).params(**params))


def prefetch(analysis: str, name: str, s: Settings, **params) -> bool:
    """Start computing ``results(analysis, [name], s, **params)`` in the background (e.g. the slider's
    likely next step); the foreground call collects it. ``RESLENS_PREFETCH=0`` turns this off
    (benchmarks/slider_prefetch.py compares the settings)."""
    if prefetch_depth() == 0:
        return False
    a = get(analysis)
    p = a.params(**params)
    key = model_key(analysis, name, s, p)
    if key is None:
        return False
    return prefetcher().submit(key, _background, a, _context(key, p))


def _background(a, ctx: Context) -> dict[str, pd.DataFrame]:
    """A prefetched run; its temporaries go back to the system when it ends (no page run ends after it)."""
    try:
        return run_one(a, ctx)
    finally:
        release_memory()


# ---------------------------------------------------------------------------- the zoo's cards
@st.cache_data(show_spinner=False, max_entries=8, ttl=60)
def zoo_table() -> pd.DataFrame:
    """The zoo's table from the model cards (re-read after a minute: an import adds a row)."""
    return zoo.zoo_table()


@st.cache_data(show_spinner=False, max_entries=64)
def cached_error(name: str, samples: int, seed: int, device: str, root: str) -> float:
    """Top-1 test error (%) of a model on the sidebar's sample, eval mode, bf16 autocast (as `evaluate`)."""
    split = D.load_split("test", root)
    idx = D.sample_indices(len(split), samples, seed)  # the images every measurement of this sample uses
    try:
        return evaluate_error(get_model(name, device), split.images[idx], split.labels[idx], device=torch.device(device))
    finally:
        release_memory()
