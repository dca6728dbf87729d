"""One declaration per analysis: what it computes, the tables it returns, its defaults.

An analysis module ends with ``register(Analysis(...))``. Everything that runs analyses loops over the
registry instead of naming them: ``python -m analysis report`` and the Reports page (:func:`compute`
in ``report.py``), the dashboard's cached results (``ui.results(name, models, settings)``) and the
parametrised tests (every table and its columns, "the model is left bit-identical", a run on a tiny net).
Adding an analysis is one module that registers itself, plus a page that draws it.

An analysis of scope ``"model"`` runs once per model through ``run(ctx)``; one of scope ``"zoo"`` runs
once for all chosen models (it reads model cards). ``run`` returns ``{table name: DataFrame}`` with the
tables it declares; a ``combine`` step may add tables computed across models (e.g. plain vs residual).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from ..core.models import CifarResNet
from .context import Context

@dataclass(frozen=True)
class Table:
    """A table an analysis returns: its CSV name and the columns it always has."""

    name: str
    columns: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Analysis:
    """The declaration of one analysis (see the module docstring)."""

    name: str
    title: str
    run: Callable[[Context], dict[str, pd.DataFrame]]
    tables: tuple[Table, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)  # parameters and their default values
    quick: Mapping[str, Any] = field(default_factory=dict)  # parameters for a quick run (tests, tiny nets)
    # the values a parameter may take (a page's options; anything else is refused): one value, or each item of a tuple
    choices: Mapping[str, tuple] = field(default_factory=dict)
    needs_data: bool = True
    residual_only: bool = False  # skipped for plain nets (e.g. paths)
    scope: str = "model"  # "model": once per model; "zoo": once for all chosen models, from their cards
    group: str = ""  # a name several analyses answer to in ``--only`` (e.g. "deletion")
    combine: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]] | None = None
    page: str = ""  # the dashboard page that draws it
    order: float = 100.0
    module: str = ""  # the module that declares it (set by :func:`register`): its code version keys stored results
    # how much work a run with these parameters is, in any unit (the time estimate scales the time measured at the
    # defaults by work(params) / work(defaults)); None: the same at any parameters
    work: Callable[[Mapping[str, Any]], float] | None = None
    # one parameter set split into the sets whose results, concatenated, are its result (given the model it runs
    # on): the dashboard caches each part on its own, so two requests that share a part compute it once
    atoms: Callable[[Mapping[str, Any], CifarResNet], list[dict]] | None = None

    def parts(self, params: Mapping[str, Any], model: CifarResNet | None) -> list[dict]:
        """``params`` split by ``atoms`` for ``model`` (just ``[params]`` without ``atoms`` or a model)."""
        if self.atoms is None or model is None:
            return [dict(params)]
        return self.atoms(params, model) or [dict(params)]

    def params(self, **overrides) -> dict:
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.name} has no parameter {', '.join(sorted(unknown))}; "
                             f"its parameters are {', '.join(self.defaults) or 'none'}")
        out = {**self.defaults, **overrides}
        for k in overrides:  # a switch given as text (``--param gradients.weight_grads=false``) means what it says
            if isinstance(self.defaults[k], bool) and not isinstance(out[k], bool):
                word = str(out[k]).strip().lower()
                if word not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                    raise ValueError(f"{self.name}: {k} is true or false, not {out[k]!r}")
                out[k] = word in ("true", "yes", "on", "1")
        for k, allowed in self.choices.items():
            v = out.get(k)
            given = v if isinstance(v, (tuple, list)) else (v,)
            bad = [x for x in given if x not in allowed]
            if bad:
                raise ValueError(f"{self.name}: {k} cannot be {bad[0]!r}; choose from {', '.join(map(str, allowed))}")
        return out

    def applies_to(self, model: CifarResNet | None) -> bool:
        return not (self.residual_only and model is not None and not model.residual)


_REGISTRY: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    """Add an analysis to the registry (each module calls this once per analysis it declares)."""
    if analysis.name in _REGISTRY and _REGISTRY[analysis.name].run is not analysis.run:
        raise ValueError(f"two analyses are called {analysis.name!r}")
    if not analysis.module:
        analysis = dataclasses.replace(analysis, module=analysis.run.__module__)
    _REGISTRY[analysis.name] = analysis
    return analysis


def load_all() -> dict[str, Analysis]:
    """Import every module of the analyses' folder (``analysis/analyses``; each registers itself); the registry in
    run order. A module there is an analysis by being there: nothing else lists them."""
    from .. import analyses as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{m.name}")
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


def get(name: str) -> Analysis:
    reg = load_all()
    if name not in reg:
        raise KeyError(f"unknown analysis {name!r}; choose from {', '.join(reg)}")
    return reg[name]


def select(only: list[str] | None = None) -> list[Analysis]:
    """The analyses named by ``only`` (names or groups), in run order; all of them when None."""
    reg = load_all()
    if not only:
        return list(reg.values())
    groups = {a.group for a in reg.values() if a.group}
    bad = [o for o in only if o not in reg and o not in groups]
    if bad:
        raise ValueError(f"unknown analyses {bad}; choose from {', '.join(list(reg) + sorted(groups))}")
    return [a for a in reg.values() if a.name in only or (a.group and a.group in only)]


def check_tables(analysis: Analysis, tables: dict[str, pd.DataFrame]) -> None:
    """Raise if a run returned a table it does not declare, or a declared table lacks a column."""
    declared = {t.name: t for t in analysis.tables}
    for k, df in tables.items():
        if k not in declared:
            raise ValueError(f"{analysis.name} returned an undeclared table {k!r}")
        missing = [c for c in declared[k].columns if c not in df.columns]
        if missing:
            raise ValueError(f"{analysis.name}: table {k} lacks the columns {missing}")


def run_one(analysis: Analysis, ctx: Context) -> dict[str, pd.DataFrame]:
    """Run one analysis in one context and check what it returns against its declaration. Every table of a
    model gets the input normalisation that model was run with (a column ``normalization``)."""
    out = analysis.run(ctx)
    check_tables(analysis, out)
    if ctx.model is not None:
        for df in out.values():
            if "model" in df.columns and "normalization" not in df.columns:
                df["normalization"] = ctx.model.normalization
    return out
