"""Claims: every claim of the study notes, measured on the chosen models and judged by a fixed rule.

Three layers, one module each: :mod:`.text` (what each claim says, what is measured, its rule in words, its page),
:mod:`.judges` (which declared table of which registered analysis each claim reads) and :mod:`.rules` (pure
functions of those tables that return a verdict: ``holds``, ``does not hold``, ``depends`` or ``untested``). No
verdict is written by hand. The claims consume the analyses' tables; they are not an analysis themselves: the CLI
(``python -m analysis claims``), the Claims page and the Reports page call :func:`judge_all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from . import judges as J
from .judges import Measure
from .rules import UNTESTED, Verdict
from .text import TEXTS, ClaimText, readme_block, to_markdown, verdict_line  # noqa: F401  (the report and the README read them)

CLAIM_COLUMNS = ("id", "claim", "statement", "verdict", "numbers", "measurement", "rule", "models", "samples", "seed",
                 "page", "chart")
# Each claim's judge, by id (the claims' order is the text's).
JUDGES: dict[int, Callable[[Measure], Verdict]] = {
    1: J.judge_degradation, 2: J.judge_vanishing, 3: J.judge_small_responses, 4: J.judge_depth_responses,
    5: J.judge_cost, 6: J.judge_conv, 7: J.judge_lambda, 8: J.judge_units, 9: J.judge_option_b, 10: J.judge_paths,
    11: J.judge_deletion, 12: J.judge_short_paths, 13: J.judge_identity, 14: J.judge_faster, 15: J.judge_gap,
    16: J.judge_sharpness, 17: J.judge_construction, 18: J.judge_readouts, 19: J.judge_separability,
    20: J.judge_recovery_residual, 21: J.judge_more_information,
}


@dataclass(frozen=True)
class Claim(ClaimText):
    """A claim's words (:class:`text.ClaimText`) and its judge."""

    judge: Callable[[Measure], Verdict] = None


CLAIMS: tuple[Claim, ...] = tuple(Claim(**{f: getattr(t, f) for f in t.__dataclass_fields__}, judge=JUDGES[t.id])
                                  for t in TEXTS)


HEAVY_IDS = tuple(c.id for c in CLAIMS if c.judge in J.HEAVY)  # the claims the "no heavy" runs leave untested

SHIPPED = Path(__file__).resolve().parents[2] / "docs"  # claims.csv, claims.md and claims.json of the shipped zoo


def shipped() -> tuple[pd.DataFrame, dict] | None:
    """(the verdicts on the shipped zoo, the manifest of the run that made them: its command, models, images, seed,
    date), from ``docs/claims.csv`` and ``docs/claims.json``; None when they are not there or unreadable."""
    import json

    try:
        table = pd.read_csv(SHIPPED / "claims.csv")
        manifest = json.loads((SHIPPED / "claims.json").read_text())
    except (OSError, ValueError):
        return None
    if not set(CLAIM_COLUMNS) <= set(table.columns):
        return None
    return table, manifest


def judge_all(m: Measure, progress=None) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """(one row per claim, {claim id: its evidence table})."""
    rows, evidence = [], {}
    for i, c in enumerate(CLAIMS):
        if progress:
            progress(i / len(CLAIMS), f"claim {c.id} of {len(CLAIMS)}: {c.title}")
        try:
            v = c.judge(m)
        except (ValueError, KeyError) as e:  # a measurement that cannot run on these models
            v = Verdict(UNTESTED, f"could not be measured on these models: {e}")
        evidence[c.id] = v.evidence
        rows.append({"id": c.id, "claim": c.title, "statement": c.statement, "verdict": v.verdict,
                     "numbers": v.summary, "measurement": c.measurement, "rule": c.rule,
                     "models": ", ".join(v.models) if v.models else ", ".join(m.names), "samples": m.samples,
                     "seed": m.seed, "page": c.page, "chart": c.chart})
    if progress:
        progress(1.0, "claims judged")
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS)), evidence


def measure_from_report(names, samples: int, seed: int, data=None, device=None, models: dict | None = None,
                        heavy: bool = True, quick: bool = False) -> Measure:
    """A Measure that runs the registered analyses through ``report.compute`` (each result kept for the run)."""
    from ..core.zoo import default_device, load_pretrained
    from ..engine.report import compute

    dev = torch.device(device) if device else default_device()
    loaded = dict(models or {})
    for n in names:
        if n not in loaded:
            loaded[n] = load_pretrained(n, device=dev)
    memo: dict = {}

    def results(analysis: str, names_, **params) -> dict[str, pd.DataFrame]:
        key = (analysis, tuple(names_), repr(sorted(params.items())))
        if key not in memo:
            memo[key] = compute(list(names_), samples=samples, seed=seed, data=data, device=dev, only=[analysis],
                                params={analysis: params}, models=loaded)[0]
        return memo[key]

    return Measure(names, results, samples, seed, model=lambda n: loaded[n], heavy=heavy, quick=quick)
