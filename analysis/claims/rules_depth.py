"""The depth claims' rules (17-21): the constructed solution, readouts, linear separability and input recovery.
Pure functions of the declared tables of the construction, readout and recovery analyses, as in :mod:`.rules`."""

from __future__ import annotations

import pandas as pd

from ..core.stats import newcombe_diff
from ..core.zoo import pairs
from .rules import ABOVE, UNTESTED, Verdict, _all_some, _all_tri, _side, _unsettled


def rule_construction(table: pd.DataFrame) -> Verdict:
    """``table``: :func:`construction.construction_table` rows. Holds if every constructed net's training and test
    error are not above its source's (Newcombe's interval of the difference not entirely above 0)."""
    if table.empty:
        return Verdict(UNTESTED, "needs a constructed net (python -m analysis construct plain20 --depth 56 ...) or "
                                 "its source among the chosen models")
    rows, flags = [], []
    for r in table.itertuples():
        ok = []
        for split, n in (("train", r.train_images), ("test", r.test_images)):
            c, s_ = getattr(r, f"constructed_{split}_error_pct"), getattr(r, f"source_{split}_error_pct")
            lo, hi = newcombe_diff(c, n, s_, n)
            ok.append(_side(lo, hi, 0.0, ABOVE) is not True)  # not surely worse
        flags.append(all(ok))
        rows.append({"model": r.model, "source": r.source, "constructed_train_error_pct": r.constructed_train_error_pct,
                     "source_train_error_pct": r.source_train_error_pct,
                     "constructed_test_error_pct": r.constructed_test_error_pct,
                     "source_test_error_pct": r.source_test_error_pct, "trained": r.trained,
                     "trained_train_error_pct": r.trained_train_error_pct, "no_worse": all(ok)})
    ev = pd.DataFrame(rows)
    words = "; ".join(
        f"{r.model} ({r.source} plus identity blocks): training error {r.constructed_train_error_pct:.2f} % vs "
        f"{r.source_train_error_pct:.2f} %, test {r.constructed_test_error_pct:.2f} % vs {r.source_test_error_pct:.2f} %"
        + (f"; the trained {r.trained} reaches {r.trained_train_error_pct:.2f} % training error: "
           + ("worse than the construction, so a solution the solver did not find exists at that depth"
              if r.trained_train_error_pct > r.constructed_train_error_pct else "no worse than the construction")
           if r.trained and pd.notna(r.trained_train_error_pct) else "")
        for r in ev.itertuples())
    return Verdict(_all_some(flags), words, ev, tuple(ev["model"]))


def _stage_ends(df: pd.DataFrame) -> pd.DataFrame:
    last = df.groupby(["model", "stage"])["point_index"].transform("max")
    return df[df["point_index"] == last].sort_values(["model", "point_index"])


def _improves(g: pd.DataFrame, lower_is_better: bool = True) -> list:
    """Per step from one stage end to the next: True if the later interval lies entirely on the better side, False if
    entirely on the worse side, None if they overlap."""
    out = []
    for (_, a), (_, b) in zip(g.iloc[:-1].iterrows(), g.iloc[1:].iterrows()):
        lo_a, hi_a, lo_b, hi_b = (a["error_low"], a["error_high"], b["error_low"], b["error_high"]) if lower_is_better \
            else (-a["r2_high"], -a["r2_low"], -b["r2_high"], -b["r2_low"])
        out.append(True if hi_b < lo_a else False if lo_b > hi_a else None)
    return out


def rule_readouts(readout: pd.DataFrame, chance_pct: float = 80.0) -> Verdict:
    """Residual nets: the head read through the skip path improves from each stage's end to the next (Wilson
    intervals apart). Plain nets: read before their last stage, the head is near chance (interval above 80 %)."""
    head = readout[readout["readout"] == "head"]
    if head.empty or head["residual"].all() or not head["residual"].any():
        return Verdict(UNTESTED, "needs a plain and a residual net")
    rows, flags = [], []
    for m, g in _stage_ends(head).groupby("model", sort=False):
        residual = bool(g["residual"].iloc[0])
        if residual:
            steps = _improves(g)
            flag = _all_tri(steps)
        else:
            early = g[g["stage"] == g["stage"].max() - 1]
            flag = _side(float(early["error_low"].iloc[0]), float(early["error_high"].iloc[0]), chance_pct, ABOVE)
        flags.append(flag)
        rows.append({"model": m, "residual": residual, "errors_at_stage_ends": " → ".join(f"{e:.1f}" for e in g["error_pct"]),
                     "ok": flag})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.model} ({'residual' if r.residual else 'plain'}): head through the skip path "
                      f"{r.errors_at_stage_ends} % at the stem and each stage's end" for r in ev.itertuples())
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(ev["model"]))


def rule_separability(readout: pd.DataFrame) -> Verdict:
    """A linear probe's test error falls from each stage's end to the next, in every net (Wilson intervals apart)."""
    probe = readout[readout["readout"] == "probe"]
    if probe.empty:
        return Verdict(UNTESTED, "needs a model")
    rows, flags = [], []
    for m, g in _stage_ends(probe).groupby("model", sort=False):
        flag = _all_tri(_improves(g))
        flags.append(flag)
        rows.append({"model": m, "probe_errors": " → ".join(f"{e:.1f}" for e in g["error_pct"]), "falls": flag})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.model}: linear probe {r.probe_errors} % at the stem and each stage's end"
                      for r in ev.itertuples())
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(ev["model"]))


def rule_recovery_residual(recovery: pd.DataFrame) -> Verdict:
    """At equal depth, a residual net's features restore more of the input than a plain net's at the end of every
    stage (R² intervals apart)."""
    found = pairs(recovery["model"].unique())
    if not found:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    ends = _stage_ends(recovery)
    rows, flags = [], []
    for p, r, d in found:
        gp, gr = ends[ends["model"] == p].set_index("stage"), ends[ends["model"] == r].set_index("stage")
        for st in sorted(set(gp.index) & set(gr.index) - {0}):
            a, b = gp.loc[st], gr.loc[st]
            flag = True if b["r2_low"] > a["r2_high"] else False if b["r2_high"] < a["r2_low"] else None
            flags.append(flag)
            rows.append({"depth": d, "plain": p, "residual": r, "stage": st, "plain_r2": a["r2"],
                         "residual_r2": b["r2"], "residual_keeps_more": flag})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.depth} layers, end of stage {r.stage}: R² {r.residual_r2:.3f} ({r.residual}) vs "
                      f"{r.plain_r2:.3f} ({r.plain})" for r in ev.itertuples())
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(sorted({x for p in found for x in p[:2]})))


def rule_more_information(recovery: pd.DataFrame) -> Verdict:
    """The note's claim, "a later block holds more of the image than an earlier one": holds if what can be recovered
    of the input rises from the stem's output to the last block's in every net; does not hold if it falls in every
    net (the data-processing inequality: a deterministic layer can only lose information about its input)."""
    if recovery.empty:
        return Verdict(UNTESTED, "needs a model")
    rows, flags = [], []
    for m, g in recovery.groupby("model", sort=False):
        g = g.sort_values("point_index")
        first, last = g.iloc[0], g.iloc[-1]
        flag = True if last["r2_low"] > first["r2_high"] else False if last["r2_high"] < first["r2_low"] else None
        flags.append(flag)
        rows.append({"model": m, "r2_stem": first["r2"], "r2_last": last["r2"], "rises": flag,
                     "rises_between_points": int((g["r2"].diff() > 0).sum())})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.model}: R² {r.r2_stem:.3f} from the stem's output, {r.r2_last:.3f} from the last block's"
                      for r in ev.itertuples())
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(ev["model"]))
