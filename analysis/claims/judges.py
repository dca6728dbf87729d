"""Measuring each claim: which registered analysis' declared table it reads, on which of the chosen models.

A judge asks its :class:`Measure` for a table by the analysis' and the table's declared names; the parameters are
the analysis' own defaults (its quick ones in a quick run), so a claim reads exactly what the analysis' page shows,
from the same cache. A judge names only what it selects (the trained rows of the gradient analysis, say), never a
default of its own. The rule (:mod:`.rules`) then decides on the numbers.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from ..analyses.deletion import path_distribution
from ..core.arch import parse_name
from ..core.zoo import arch_of, available, pairs, zoo_table
from ..engine.registry import get
from . import rules as R
from . import rules_depth as RD
from .rules import Verdict


class Measure:
    """Where the claims get their numbers: ``results(analysis, names, **params)`` (the dashboard's cached
    one, or :func:`report.compute` in the CLI), the chosen models, the sample, and the loaded models."""

    def __init__(self, names, results: Callable[..., dict[str, pd.DataFrame]], samples: int, seed: int,
                 model: Callable[[str], object], heavy: bool = True, quick: bool = False) -> None:
        self.names = list(names)
        self._results = results
        self.samples, self.seed = samples, seed
        self.model = model
        self.heavy = heavy
        self.quick = quick

    def table(self, analysis: str, table: str, names, **selection) -> pd.DataFrame:
        """The declared ``table`` of ``analysis`` for ``names``, run with the analysis' defaults (its quick
        parameters in a quick run) and ``selection`` (what the claim reads, e.g. ``states=("trained",)``)."""
        a = get(analysis)
        if table not in {t.name for t in a.tables}:
            raise KeyError(f"{analysis} declares no table {table!r}")
        names = list(names)
        if not names:
            return pd.DataFrame(columns=list(next(t for t in a.tables if t.name == table).columns))
        base = dict(a.quick) if self.quick else {}
        got = self._results(analysis, names, **{**base, **selection})
        return got.get(table, pd.DataFrame(columns=list(next(t for t in a.tables if t.name == table).columns)))

    def defaults(self, analysis: str) -> dict:
        a = get(analysis)
        return a.params(**(dict(a.quick) if self.quick else {}))

    # the chosen models by kind
    def arch(self, name: str):
        try:
            return arch_of(name)
        except (ValueError, KeyError):
            return None

    def zoo(self) -> list[str]:
        return [n for n in self.names if n in available()]

    def plain(self) -> list[str]:
        return [n for n in self.names if (a := self.arch(n)) is not None and not a.residual and not a.is_variant]

    def residual(self, original_only: bool = True) -> list[str]:
        return [n for n in self.names if (a := self.arch(n)) is not None and a.residual
                and (not original_only or not a.is_variant)]

    def cards(self) -> pd.DataFrame:
        """The zoo's table (from the model cards) for the chosen models that ResLens trained."""
        t = zoo_table(self.zoo())
        return t[t["iterations"].notna()].reset_index(drop=True)


def judge_degradation(m: Measure) -> Verdict:
    return R.rule_degradation(m.cards())


def judge_vanishing(m: Measure) -> Verdict:
    return R.rule_vanishing(m.table("gradients", "gradients", m.plain(), states=("trained",), lambdas=()))


def judge_small_responses(m: Measure) -> Verdict:
    return R.rule_small_responses(m.table("responses", "response_comparison", m.plain() + m.residual()))


def judge_depth_responses(m: Measure) -> Verdict:
    s = m.table("responses", "response_summary", m.residual()).copy()
    s["depth"] = [parse_name(n).depth for n in s["model"]]
    return R.rule_depth_responses(s)


def judge_cost(m: Measure) -> Verdict:
    from ..analyses.cost import interleaved_rounds

    c = m.table("cost", "cost", m.plain() + m.residual())
    if c.empty:
        return Verdict(R.UNTESTED, "needs a plain and a residual net of the same depth")
    chosen = sorted({x for p in pairs(m.plain() + m.residual()) for x in p[:2]})
    p = m.defaults("cost")
    times = interleaved_rounds({n: m.model(n) for n in chosen}, images=p["images"], repeats=p["repeats"])
    return R.rule_cost(c, times)


def judge_conv(m: Measure) -> Verdict:
    return R.rule_conv_formula(m.table("cost", "conv_cost", m.names[:4]))


def judge_lambda(m: Measure) -> Verdict:
    res = m.residual()
    if not res:
        return R.rule_lambda(pd.DataFrame(), pd.DataFrame())
    ref = sorted(res, key=lambda n: parse_name(n).depth)[-1]
    s = m.table("gradients", "gradient_summary", [ref])
    init = s[s["state"] == "init"]
    scaled = [n for n in m.names if (a := m.arch(n)) is not None and a.residual and a.lam != 1.0]
    depths = {parse_name(n).depth for n in scaled}
    ident = [n for n in res if parse_name(n).depth in depths]
    trained = m.table("gradients", "gradient_summary", scaled + ident, states=("trained",), lambdas=()) if scaled \
        else pd.DataFrame()
    return R.rule_lambda(init, trained)


def _variants(m: Measure) -> pd.DataFrame:
    return m.table("variants", "variants", [n for n in m.zoo() if (a := m.arch(n)) is not None and a.residual])


def judge_units(m: Measure) -> Verdict:
    return R.rule_units(_variants(m))


def judge_option_b(m: Measure) -> Verdict:
    return R.rule_option_b(_variants(m))


def judge_paths(m: Measure) -> Verdict:
    checks = pd.DataFrame([R.linear_paths_check(n, seed=n) for n in (3, 5, 8)])
    dists = []
    for n in m.residual(original_only=False):
        d = path_distribution(3 * ((m.arch(n).depth - 2) // 6))  # a 6n+2 net has 3n blocks
        d.insert(0, "model", n)
        dists.append(d)
    return R.rule_paths(checks, pd.concat(dists, ignore_index=True) if dists else
                        pd.DataFrame(columns=["model", "length", "n_paths", "fraction"]))


def judge_deletion(m: Measure) -> Verdict:
    single = m.table("deletion_single", "deletion_single", m.plain() + m.residual())
    if single.empty:
        return Verdict(R.UNTESTED, "needs a plain and a residual net")
    return R.rule_deletion(single, m.table("deletion_random", "deletion_random", m.residual()))


def judge_short_paths(m: Measure) -> Verdict:
    return R.rule_short_paths(m.table("paths", "paths", m.residual()))


def judge_identity(m: Measure) -> Verdict:
    return R.rule_identity_share(m.table("gradient_split", "gradient_split", m.plain() + m.residual()))


def judge_faster(m: Measure) -> Verdict:
    cards = m.cards()
    return R.rule_train_faster(m.table("training", "training", list(cards["model"])), cards)


def judge_gap(m: Measure) -> Verdict:
    return R.rule_gap(m.cards())


def judge_sharpness(m: Measure) -> Verdict:
    if not m.heavy:
        return R.rule_sharpness(pd.DataFrame())
    names = sorted({x for p in pairs(m.plain() + m.residual()) for x in p[:2]})
    return R.rule_sharpness(m.table("hessian", "hessian", names))


HEAVY = (judge_sharpness,)  # the judges that measure only with heavy=True (minutes of Hessian products on a CPU)


def judge_construction(m: Measure) -> Verdict:
    """The constructed nets made from (or among) the chosen models."""
    return RD.rule_construction(m.table("construction", "construction", m.zoo()))


def judge_readouts(m: Measure) -> Verdict:
    return RD.rule_readouts(m.table("readout", "readout", m.plain() + m.residual()))


def judge_separability(m: Measure) -> Verdict:
    return RD.rule_separability(m.table("readout", "readout", m.plain() + m.residual()))


def judge_recovery_residual(m: Measure) -> Verdict:
    return RD.rule_recovery_residual(m.table("recovery", "input_recovery", m.plain() + m.residual()))


def judge_more_information(m: Measure) -> Verdict:
    return RD.rule_more_information(m.table("recovery", "input_recovery", m.plain() + m.residual()))
