"""``python -m analysis report``: every registered analysis as CSV, plus manifest.json, without the UI.

The report knows no analysis by name: it loops over the registry (``registry.py``), runs each
analysis of scope "model" once per model (plain nets skip the residual-only ones) and each of scope
"zoo" once, concatenates the tables and adds the cross-model tables of each ``combine`` step.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from pathlib import Path
from typing import Mapping

import pandas as pd
import torch

from ..core import data as D
from . import distributed as dd
from ..core.common import Progress, terminal_bar
from .context import Context, Workspace
from .registry import Analysis, check_tables, run_one, select
from ..core.zoo import load_pretrained


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for p in ("torch", "torchvision", "captum", "pandas", "numpy", "safetensors", "streamlit"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def plan(analyses: list[Analysis], names: list[str], models: Mapping) -> list[tuple[Analysis, str]]:
    """The (analysis, model) steps of a report, in order; "all" stands for every model of a zoo-scope step."""
    steps = []
    for a in analyses:
        if a.scope == "zoo":
            steps.append((a, "all"))
        else:
            steps += [(a, n) for n in names if a.applies_to(models[n])]
    return steps


def compute(names: list[str], samples: int = 1000, seed: int = 0, data=None, device=None, only=None,
            params: Mapping[str, Mapping] | None = None, quick: bool = False, progress: Progress = None,
            models: dict | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Run the analyses; returns ({csv name: DataFrame}, manifest).

    ``params``: per analysis, parameters that replace its defaults (``{"deletion_random": {"trials": 10}}``);
    ``quick``: start from each analysis' light parameters instead of its defaults (the Reports page).
    ``models`` may supply loaded models by name (e.g. an uploaded checkpoint); the rest come from the zoo.
    Under ``torchrun`` each rank runs its share of the (analysis, model) steps and rank 0 returns them all.
    """
    analyses = select(list(only) if only else None)
    params = dict(params or {})
    unknown = set(params) - {a.name for a in analyses}
    if unknown:
        raise ValueError(f"parameters given for analyses that do not run: {', '.join(sorted(unknown))}")
    check_data(analyses, data)
    w = dd.world()
    dev = w.device(device)  # the requested device, else this rank's GPU, else the CPU
    loaded = {n: (models or {}).get(n) or load_pretrained(n, device=dev) for n in names}
    steps = plan(analyses, names, loaded)
    settings = {a.name: a.params(**{**(a.quick if quick else {}), **params.get(a.name, {})}) for a in analyses}
    tick = progress or (lambda frac, msg: None)
    shared = Workspace()  # the sample and each model's shared work, computed once for the whole run

    def work(si: int, step: tuple[Analysis, str]) -> tuple[dict[str, pd.DataFrame], float, str | None]:
        a, n = step
        t0 = time.time()
        sub = lambda f, msg: tick((si + f) / len(steps), msg)  # noqa: E731
        if a.scope == "zoo":
            ctx = Context(name="all", names=tuple(names), device=dev, seed=seed, samples=samples, data=data,
                          models=loaded, shared=shared, params=settings[a.name], progress=sub)
        else:
            ctx = Context(name=n, model=loaded[n], arch=loaded[n].name, device=dev, seed=seed, samples=samples,
                          data=data, shared=shared, params=settings[a.name], progress=sub)
        out = run_one(a, ctx)
        tick((si + 1) / len(steps), f"{a.name} done for {n}")
        sample = shared.first("sample")
        source = sample.source if sample is not None else None
        return out, round(time.time() - t0, 2), source

    # In one process every step runs here; under torchrun each rank runs its share and rank 0 gets all of
    # them back in the plan's order, so the tables are concatenated exactly as one process would.
    done = dd.run_sharded(steps, work, w)
    if done is None:  # not rank 0
        return {}, {}
    tables: dict[str, list[pd.DataFrame]] = {}
    timings: dict[str, float] = {}
    source = None
    for (a, n), (out_tables, secs, src) in zip(steps, done):
        for k, df in out_tables.items():
            tables.setdefault(k, []).append(df)
        timings[f"{a.name}:{n}"] = secs
        source = source or src
    out = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    out.update(combine(analyses, out))
    manifest = {
        "models": names, "analyses": [a.name for a in analyses], "device": str(dev), "processes": w.size,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "seed": seed, "samples": samples, "parameters": settings, "data_source": source,
        "data_root": str(D.resolve_root(data)), "versions": _versions(), "wall_time_s": timings,
        "files": {k: f"{k}.csv" for k in out},
    }
    return out, manifest


def check_data(analyses: list[Analysis], data=None) -> None:
    """Raise DataNotFound (one sentence) when an analysis needs CIFAR-10 and it is not there: before any work."""
    if any(a.needs_data and a.scope == "model" for a in analyses):
        found, sentence = D.data_status(data)
        if not found:
            raise D.DataNotFound(sentence)


def combine(analyses: list[Analysis], tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The cross-model tables of every analysis that declares a ``combine`` step."""
    out = {}
    for a in analyses:
        if a.combine is not None:
            extra = a.combine(tables)
            check_tables(a, extra)
            out.update(extra)
    return out


def write_report(tables: dict[str, pd.DataFrame], manifest: dict, out: Path,
                 documents: dict[str, str] | None = None) -> list[Path]:
    """Write every CSV, the ``documents`` (name -> text, e.g. claims.md) and manifest.json into ``out``, all or
    nothing: the files are written to a
    temporary folder inside ``out`` and then moved into place with Ctrl-C held back, so an interruption leaves
    either the old report or the new one, never half of one."""
    import os
    import shutil
    import signal
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | pd.DataFrame] = {f"{k}.csv": df for k, df in tables.items()}
    files.update(documents or {})
    files["manifest.json"] = json.dumps(manifest, indent=1, default=str) + "\n"
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".partial-"))
    try:
        for name, content in files.items():
            if isinstance(content, pd.DataFrame):
                content.to_csv(tmp / name, index=False)
            else:
                (tmp / name).write_text(content)
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for name in files:
                os.replace(tmp / name, out / name)
        finally:
            if main_thread:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in files]


def run_report(names: list[str], samples: int, out: Path, data=None, device=None, seed: int = 0,
               only=None, params: Mapping[str, Mapping] | None = None) -> list[Path]:
    t0 = time.time()
    check_data(select(list(only) if only else None), data)
    with terminal_bar("report", enabled=dd.world().main) as prog:
        tables, manifest = compute(names, samples=samples, seed=seed, data=data, device=device, only=only,
                                   params=params, progress=prog)
    if not dd.world().main:
        return []
    manifest["total_wall_time_s"] = round(time.time() - t0, 1)
    paths = write_report(tables, manifest, out)
    for p in paths:
        print(p)
    return paths
