"""Claims: every claim of the study notes, measured on the chosen models and judged by a fixed rule.

Each claim is stated in one sentence, names the measurement that tests it, and has a *rule*: a pure
function of the measured tables that returns a verdict (``holds``, ``does not hold``, ``depends`` or
``untested``), the numbers it read, and the evidence table it decided on. No verdict is written by hand;
``tests/test_claims_rules.py`` checks every rule on synthetic tables where the answer is known.

The measurements come from the registered analyses through a :class:`Measure` (the CLI runs them; the
dashboard hands over its cached ``ui.results``), so a claim shows exactly what the page it links to shows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .analyses.curves import epochs_to_reach
from .analyses.deletion import path_distribution
from .analyses.gradients import LAMBDAS, gradient_summary
from .core.models import parse_name
from .analyses.responses import summarize_responses
from .core.stats import ABOVE, BELOW, STRADDLES, compare, mean_interval, median_interval, newcombe_diff, welch_diff
from .analyses.variants import variant_table
from .core.zoo import available, load_card

HOLDS, FAILS, DEPENDS, UNTESTED = "holds", "does not hold", "depends", "untested"
UNSETTLED = ("an interval straddles the rule's threshold, so the evidence cannot tell: more test images or trials "
             "would settle it")


@dataclass
class Verdict:
    verdict: str
    summary: str  # the numbers, in words
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    id: int
    title: str
    statement: str  # the claim, one sentence
    measurement: str  # exactly what is measured
    rule: str  # the fixed rule, in words
    page: str  # the page (and chart) that shows the evidence
    chart: str
    judge: Callable[["Measure"], Verdict]
    cost: str = "light"  # "light" or "heavy" (minutes on a CPU: the page asks first)


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

    def results(self, analysis: str, names, **params) -> dict[str, pd.DataFrame]:
        names = list(names)
        return self._results(analysis, names, **params) if names else {}

    # the chosen models by kind
    def arch(self, name: str):
        try:
            return parse_name(name)
        except ValueError:
            return None

    def zoo(self) -> list[str]:
        return [n for n in self.names if n in available()]

    def plain(self) -> list[str]:
        return [n for n in self.names if (a := self.arch(n)) is not None and not a.residual and not a.is_variant]

    def residual(self, original_only: bool = True) -> list[str]:
        return [n for n in self.names if (a := self.arch(n)) is not None and a.residual
                and (not original_only or not a.is_variant)]

    def cards(self) -> pd.DataFrame:
        rows = []
        for n in self.zoo():
            c = load_card(n)
            if not c.get("schedule") or self.arch(n) is None:  # imported: no training record
                continue
            a = parse_name(n)
            data = c.get("data") or {}
            rows.append({"model": n, "residual": a.residual, "depth": a.depth, "variant": a.is_variant,
                         "train_error_pct": c["train_error_pct"], "test_error_pct": c["test_error_pct"],
                         "train_images": int(data.get("train_images", 50000)),
                         "test_images": int(data.get("test_images", 10000)),
                         "iterations": c["schedule"]["iterations"], "milestones": tuple(c["schedule"]["milestones"]),
                         "steps_per_epoch": c["schedule"]["steps_per_epoch"]})
        return pd.DataFrame(rows, columns=["model", "residual", "depth", "variant", "train_error_pct", "test_error_pct",
                                           "train_images", "test_images", "iterations", "milestones",
                                           "steps_per_epoch"])


def _pairs(plain: list[str], residual: list[str]) -> list[tuple[str, str, int]]:
    """(plain, residual, depth) for every plain and residual model of one depth."""
    out = []
    for p in plain:
        for r in residual:
            if parse_name(p).depth == parse_name(r).depth:
                out.append((p, r, parse_name(p).depth))
    return out


def _all_some(flags: list) -> str:
    """holds if every flag is True, does not hold if every one is False, depends otherwise: mixed, or a flag is
    None (its interval straddles the threshold). Noise can move a verdict to or from depends, never between
    holds and does not hold unless the intervals themselves fall on opposite sides."""
    if flags and all(f is True for f in flags):
        return HOLDS
    if flags and all(f is False for f in flags):
        return FAILS
    return DEPENDS


def _side(low: float, high: float, threshold: float, want: str) -> bool | None:
    """True when the interval lies entirely on the ``want`` side (ABOVE or BELOW) of ``threshold``, False when
    entirely on the other, None when it straddles it."""
    where = compare(low, high, threshold)
    return None if where == STRADDLES else where == want


def _unsettled(flags: list) -> str:
    return f". Unsettled: {UNSETTLED}" if any(f is None for f in flags) else ""


# ============================================================================ the rules (pure functions)
def rule_degradation(cards: pd.DataFrame) -> Verdict:
    plain = cards[~cards["residual"] & ~cards["variant"]].sort_values("depth")
    if plain["depth"].nunique() < 2:
        return Verdict(UNTESTED, "needs two plain nets of different depth (with model cards)")
    rows = []
    for (_, a), (_, b) in itertools.combinations(plain.iterrows(), 2):
        if a["depth"] == b["depth"]:
            continue
        lo, hi = newcombe_diff(b["train_error_pct"], _n(b, "train_images", 50000), a["train_error_pct"],
                               _n(a, "train_images", 50000))
        rows.append({"shallow": a["model"], "deep": b["model"], "shallow_train_error_pct": a["train_error_pct"],
                     "deep_train_error_pct": b["train_error_pct"], "difference_low_pts": lo, "difference_high_pts": hi,
                     "deeper_trains_worse": _side(lo, hi, 0.0, ABOVE)})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.deep} {r.deep_train_error_pct:.2f} % vs {r.shallow} {r.shallow_train_error_pct:.2f} % "
                      f"(difference {r.difference_low_pts:+.2f} to {r.difference_high_pts:+.2f} points, 95 %)"
                      for r in ev.itertuples())
    flags = list(ev["deeper_trains_worse"])
    return Verdict(_all_some(flags), f"training error (eval mode, 50k images): {words}" + _unsettled(flags), ev,
                   tuple(plain["model"]))


def _n(row, column: str, default: int) -> int:
    v = row.get(column) if hasattr(row, "get") else None
    return int(v) if v is not None and not pd.isna(v) else default


def rule_vanishing(grads: pd.DataFrame, threshold: float = 0.1) -> Verdict:
    g = grads[(~grads["residual"]) & (grads["state"] == "trained")]
    if g.empty:
        return Verdict(UNTESTED, "needs a trained plain net")
    s = gradient_summary(g)
    s["vanishes"] = [_side(lo, hi, threshold, BELOW) for lo, hi in zip(s["first_over_last_low"], s["first_over_last_high"])]
    words = "; ".join(f"{r.model}: {r.first_block_grad:.3g} at the first block vs {r.last_block_grad:.3g} at the last "
                      f"({r.first_over_last:.3g}x, 95 % interval {r.first_over_last_low:.3g}-{r.first_over_last_high:.3g}x)"
                      for r in s.itertuples())
    flags = list(s["vanishes"])
    return Verdict(_all_some(flags), words + _unsettled(flags), s, tuple(s["model"]))


def rule_small_responses(cmp: pd.DataFrame) -> Verdict:
    if cmp.empty:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    flags = list(cmp["residual_smaller"])
    words = "; ".join(f"{r.residual} vs {r.plain}, {r.measure}: {r.residual_value:.3f} vs {r.plain_value:.3f}"
                      for r in cmp.itertuples())
    v = _all_some(flags)
    if v == DEPENDS:
        bad = sorted({f"{r.measure} at {r.depth} layers" for r in cmp.itertuples() if not r.residual_smaller})
        words += ". Not smaller: " + ", ".join(bad)
    return Verdict(v, words, cmp, tuple(sorted(set(cmp["plain"]) | set(cmp["residual"]))))


def rule_depth_responses(summary: pd.DataFrame) -> Verdict:
    res = summary[summary["residual"]].sort_values("depth")
    if res["depth"].nunique() < 2:
        return Verdict(UNTESTED, "needs two residual nets of different depth")
    rows = []
    for col in ("median_std", "median_std_all", "mean_ratio"):
        vals = list(res[col])
        rows.append({"measure": col, "values": " → ".join(f"{v:.3f}" for v in vals),
                     "models": " → ".join(res["model"]), "decreasing": all(b < a for a, b in zip(vals, vals[1:]))})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.measure}: {r.values} ({r.models})" for r in ev.itertuples())
    return Verdict(_all_some(list(ev["decreasing"])), words, ev, tuple(res["model"]))


def rule_cost(cost: pd.DataFrame, times: dict[str, list[float]], tolerance: float = 0.15) -> Verdict:
    """``times``: ms per image of each net, one value per round of :func:`cost.interleaved_rounds` (the nets
    measured in turns). A timing enters the verdict only as the ratio of two nets measured in the same round,
    with the spread over the rounds: the order-statistic interval of the median ratio (7 rounds: the smallest and
    the largest ratio, 98 %)."""
    pairs = _pairs([m for m in cost["model"] if not parse_name(m).residual],
                   [m for m in cost["model"] if parse_name(m).residual and not parse_name(m).is_variant])
    if not pairs:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    c = cost.set_index("model")
    rows = []
    for p, r, d in pairs:
        tp, tr = list(times.get(p, [])), list(times.get(r, []))
        ratios = [b / a for a, b in zip(tp, tr) if a > 0]
        ratio, lo, hi = median_interval(ratios) if ratios else (float("nan"),) * 3
        within = None if not ratios else (
            True if (lo >= 1 / (1 + tolerance) and hi <= 1 + tolerance) else
            False if (lo > 1 + tolerance or hi < 1 / (1 + tolerance)) else None)
        rows.append({"plain": p, "residual": r, "depth": d, "params_plain": int(c.loc[p, "params"]),
                     "params_residual": int(c.loc[r, "params"]), "flops_plain": int(c.loc[p, "flops_per_image"]),
                     "flops_residual": int(c.loc[r, "flops_per_image"]), "shortcut_adds": int(c.loc[r, "adds_per_image"]),
                     "ms_plain": float(np.median(tp)) if tp else float("nan"),
                     "ms_residual": float(np.median(tr)) if tr else float("nan"), "rounds": len(ratios),
                     "time_ratio": ratio, "time_ratio_low": lo, "time_ratio_high": hi, "time_within_tolerance": within})
    ev = pd.DataFrame(rows)
    same = (ev["params_plain"] == ev["params_residual"]) & (ev["flops_plain"] == ev["flops_residual"])
    timing = list(ev["time_within_tolerance"])
    if not same.all():
        v = FAILS if not same.any() else DEPENDS
    else:
        v = HOLDS if all(t is True for t in timing) else DEPENDS
    words = "; ".join(
        f"{r.residual} vs {r.plain}: {r.params_residual:,} vs {r.params_plain:,} parameters, {r.flops_residual / 1e6:.1f} "
        f"vs {r.flops_plain / 1e6:.1f} MFLOPs (+{r.shortcut_adds:,} additions the counter leaves out, "
        f"{100 * r.shortcut_adds / max(r.flops_residual, 1):.2f} % of the FLOPs), {r.ms_residual:.3f} vs "
        f"{r.ms_plain:.3f} ms per image (time ratio {r.time_ratio:.2f}x, 95 % interval {r.time_ratio_low:.2f}-"
        f"{r.time_ratio_high:.2f}x over {r.rounds} rounds measured in turns)" for r in ev.itertuples())
    if v == DEPENDS and same.all():
        if any(t is False for t in timing):
            words += f". Parameters and counted FLOPs are equal; the measured time differs by more than {tolerance:.0%}"
        else:
            words += (f". Parameters and counted FLOPs are equal; the time ratio's interval reaches beyond the "
                      f"{tolerance:.0%} tolerance, so the timing cannot tell (a busy machine): more rounds would settle it")
    return Verdict(v, words, ev, tuple(sorted(set(ev["plain"]) | set(ev["residual"]))))


def rule_conv_formula(convs: pd.DataFrame) -> Verdict:
    if convs.empty:
        return Verdict(UNTESTED, "needs a model")
    ok = convs["counted_flops"] == 2 * convs["formula_macs"]
    strided = convs[convs["stride"] > 1]
    words = (f"{int(ok.sum())} of {len(convs)} conv layers of {convs['model'].nunique()} models match "
             "2·H·W·C_in·C_out·k² FLOPs exactly with H·W the output size")
    if len(strided):
        r = strided.iloc[0]
        words += (f"; with the input size instead, the stride-2 convs would be off by 4x (e.g. {r['layer']}: "
                  f"{r['formula_macs_input_size']:,} vs {r['counted_macs']:,} multiply-adds)")
    return Verdict(HOLDS if ok.all() else (FAILS if not ok.any() else DEPENDS), words, convs,
                   tuple(convs["model"].unique()))


def rule_lambda(init: pd.DataFrame, trained: pd.DataFrame) -> Verdict:
    """``init``: gradient_summary rows at initialisation for several lambdas (one model); ``trained``: rows of
    nets trained with a shortcut scale and the identity net they are compared with."""
    if init.empty or 1.0 not in set(init["lambda"]):
        return Verdict(UNTESTED, "needs a residual net (λ is set on its fresh initialisation)")
    init = _with_ratio_interval(init)
    one = init[init["lambda"] == 1.0].iloc[0]
    ref, ref_lo, ref_hi = float(one["first_over_last"]), float(one["first_over_last_low"]), float(one["first_over_last_high"])
    above = init[init["lambda"] > 1.0]
    below = init[init["lambda"] < 1.0]
    # grows more than identity: its interval above identity's; vanishes: its interval below 1
    grow = [True if lo > ref_hi else False if hi < ref_lo else None
            for lo, hi in zip(above["first_over_last_low"], above["first_over_last_high"])]
    shrink = [_side(lo, hi, 1.0, BELOW) for lo, hi in zip(below["first_over_last_low"], below["first_over_last_high"])]
    explodes = _all_tri(grow) if len(above) else False
    vanishes = _all_tri(shrink) if len(below) else False
    model = init["model"].iloc[0]
    words = (f"at initialisation ({model}), first-block over last-block gradient: " +
             ", ".join(f"λ = {r['lambda']:g}: {r['first_over_last']:.3g}x" for _, r in init.sort_values("lambda").iterrows())
             + f"; λ > 1 {_word(explodes, 'grows it more than identity', 'does not grow it more than identity')}, "
             + f"λ < 1 {_word(vanishes, 'shrinks it (vanishes)', 'does not make it vanish')}")
    parts = [explodes, vanishes]
    ev = [init.assign(where="init")]
    if trained.empty:
        words += ". Untested on trained nets: choose a net trained with a shortcut scale (e.g. resnet56-scale0.5)"
    else:
        t = _with_ratio_interval(trained).sort_values("lambda")
        ident = t[t["lambda"] == 1.0]
        scaled = t[t["lambda"] < 1.0]
        if len(ident) and len(scaled):
            r0 = float(ident["first_over_last"].iloc[0])
            trained_vanish = _all_tri([_side(lo, hi, 1.0, BELOW) for lo, hi in
                                       zip(scaled["first_over_last_low"], scaled["first_over_last_high"])])
            parts.append(trained_vanish)
            words += ("; trained: " + ", ".join(f"{r['model']} (λ = {r['lambda']:g}) {r['first_over_last']:.3g}x"
                                                for _, r in scaled.iterrows())
                      + f" against {r0:.3g}x for {ident['model'].iloc[0]}: "
                      + _word(trained_vanish, "the gradient vanishes with λ < 1", "λ < 1 does not make it vanish"))
        ev.append(t.assign(where="trained"))
    return Verdict(_all_some(parts), words + _unsettled(parts), pd.concat(ev, ignore_index=True),
                   tuple(pd.concat(ev)["model"].unique()))


def _with_ratio_interval(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows with the ratio's interval (a zero-width one where a table carries no spread)."""
    out = summary.copy()
    for c in ("first_over_last_low", "first_over_last_high"):
        if c not in out:
            out[c] = out["first_over_last"]
    return out


def _all_tri(flags: list) -> bool | None:
    """True if all True, False if any False, else None (undecided)."""
    if any(f is False for f in flags):
        return False
    return True if all(f is True for f in flags) else None


def _word(flag: bool | None, yes: str, no: str) -> str:
    return yes if flag is True else no if flag is False else f"cannot tell ({yes}?)"


def rule_units(table: pd.DataFrame) -> Verdict:
    rows = []
    for depth, g in table.groupby("depth"):
        g = g[g["shortcut"] == "identity"].set_index("unit")
        if not {"original", "full-preact", "bn-after-add"} <= set(g.index):
            continue
        o, p, b = (float(g.loc[u, "test_error_pct"]) for u in ("original", "full-preact", "bn-after-add"))
        n = {u: _n(g.loc[u], "test_images", 10000) for u in ("original", "full-preact", "bn-after-add")}
        p_lo, p_hi = newcombe_diff(p, n["full-preact"], o, n["original"])
        b_lo, b_hi = newcombe_diff(b, n["bn-after-add"], o, n["original"])
        rows.append({"depth": depth, "original": o, "full_preact": p, "bn_after_add": b,
                     "preact_minus_original_low": p_lo, "preact_minus_original_high": p_hi,
                     "bnafter_minus_original_low": b_lo, "bnafter_minus_original_high": b_hi,
                     "preact_better": _side(p_lo, p_hi, 0.0, BELOW), "bn_after_worse": _side(b_lo, b_hi, 0.0, ABOVE)})
    if not rows:
        return Verdict(UNTESTED, "needs the original, full pre-activation and BN-after-addition nets of one depth "
                                 "(e.g. resnet56, resnet56-preact, resnet56-bnafter)")
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.depth} layers, test error: full pre-activation {r.full_preact:.2f} %, original {r.original:.2f} %, "
                      f"BN after addition {r.bn_after_add:.2f} % (pre-activation minus original "
                      f"{r.preact_minus_original_low:+.2f} to {r.preact_minus_original_high:+.2f} points, BN after "
                      f"addition minus original {r.bnafter_minus_original_low:+.2f} to {r.bnafter_minus_original_high:+.2f}, "
                      "95 %)" for r in ev.itertuples())
    flags = list(ev["preact_better"]) + list(ev["bn_after_worse"])
    return Verdict(_all_some(flags), words + _unsettled(flags), ev)


def rule_option_b(table: pd.DataFrame) -> Verdict:
    rows = []
    for depth, g in table.groupby("depth"):
        g = g[g["unit"] == "original"].set_index("shortcut")
        if {"identity", "B"} <= set(g.index):
            a, b = float(g.loc["identity", "test_error_pct"]), float(g.loc["B", "test_error_pct"])
            lo, hi = newcombe_diff(b, _n(g.loc["B"], "test_images", 10000), a, _n(g.loc["identity"], "test_images", 10000))
            rows.append({"depth": depth, "option_a": a, "option_b": b, "b_minus_a_pts": b - a,
                         "b_minus_a_low": lo, "b_minus_a_high": hi, "b_better": _side(lo, hi, 0.0, BELOW)})
    if not rows:
        return Verdict(UNTESTED, "needs an option-A and an option-B net of one depth (e.g. resnet56, resnet56b)")
    ev = pd.DataFrame(rows)
    flags = list(ev["b_better"])
    words = "; ".join(f"{r.depth} layers: option B {r.option_b:.2f} % vs option A {r.option_a:.2f} % test error "
                      f"(B minus A {r.b_minus_a_low:+.2f} to {r.b_minus_a_high:+.2f} points, 95 %)" for r in ev.itertuples())
    return Verdict(_all_some(flags), words + _unsettled(flags), ev)


def linear_paths_check(n: int = 3, dim: int = 4, seed: int = 0) -> dict:
    """Unroll a linear residual net x -> (I + A_n)...(I + A_1) x into its 2^n paths: count them, sum them, and
    compare the sum with the net's output (float64)."""
    g = torch.Generator().manual_seed(seed)
    mats = [0.3 * torch.randn(dim, dim, generator=g, dtype=torch.float64) for _ in range(n)]
    x = torch.randn(dim, generator=g, dtype=torch.float64)
    out = x.clone()
    for a in mats:
        out = out + a @ out
    total, count, lengths = torch.zeros(dim, dtype=torch.float64), 0, []
    for subset in itertools.product((0, 1), repeat=n):  # through the branch of block i where subset[i] = 1
        h = x.clone()
        for take, a in zip(subset, mats):
            h = a @ h if take else h
        total += h
        count += 1
        lengths.append(sum(subset))
    hist = np.bincount(lengths, minlength=n + 1)
    binom = np.array([math.comb(n, k) for k in range(n + 1)])
    return {"blocks": n, "paths": count, "two_to_n": 2 ** n, "max_abs_diff": float((total - out).abs().max()),
            "lengths_binomial": bool((hist == binom).all())}


def rule_paths(checks: pd.DataFrame, dists: pd.DataFrame) -> Verdict:
    ok = (checks["paths"] == checks["two_to_n"]) & (checks["max_abs_diff"] < 1e-9) & checks["lengths_binomial"]
    dist_ok = True
    words = "; ".join(f"{r.blocks} blocks: {r.paths} paths (2^{r.blocks} = {r.two_to_n}), their sum equals the net's "
                      f"output to {r.max_abs_diff:.1e}" for r in checks.itertuples())
    for m, g in dists.groupby("model"):
        n = int(g["length"].max())
        s = int(g["n_paths"].sum())
        dist_ok &= s == 2 ** n
        words += f"; {m}: {n} blocks, {s:.4g} = 2^{n} paths, mean length {float((g['length'] * g['fraction']).sum()):.1f}"
    return Verdict(HOLDS if ok.all() and dist_ok else FAILS, words, checks)


def rule_deletion(single: pd.DataFrame, random: pd.DataFrame, hurt_pts: float = 5.0, collapse_pct: float = 50.0,
                  jump_pts: float = 20.0) -> Verdict:
    """Intervals, not points: the median over blocks (its order-statistic interval) against ``hurt_pts`` and
    ``collapse_pct``; each step of the mean error between consecutive k (Welch's interval over the trials of both
    k) against ``jump_pts``."""
    s = single[~single["downsample"]]
    res, plain = s[s["residual"]], s[~s["residual"]]
    if res.empty or plain.empty:
        return Verdict(UNTESTED, "needs a plain and a residual net")
    rows = []
    for m, g in res.groupby("model"):
        med, lo, hi = median_interval(g["delta_error_pct"])
        rows.append({"model": m, "kind": "residual", "median_delta_pts": med, "low": lo, "high": hi,
                     "median_error_pct": float(g["error_pct"].median()), "ok": _side(lo, hi, hurt_pts, BELOW)})
    for m, g in plain.groupby("model"):
        med, lo, hi = median_interval(g["error_pct"])
        rows.append({"model": m, "kind": "plain", "median_delta_pts": float(g["delta_error_pct"].median()),
                     "median_error_pct": med, "low": lo, "high": hi, "ok": _side(lo, hi, collapse_pct, ABOVE)})
    smooth = []
    for m, g in random[random["residual"]].groupby("model"):
        ks = sorted(g["k"].unique())
        steps = []
        for k0, k1 in zip(ks, ks[1:]):
            diff, lo, hi = welch_diff(g.loc[g["k"] == k0, "error_pct"], g.loc[g["k"] == k1, "error_pct"])
            steps.append((k0, k1, diff, lo, hi))
        # every step within ±jump: True; one step surely beyond: False; a step whose interval reaches it: None
        flags = [True if (lo > -jump_pts and hi < jump_pts) else False if (lo > jump_pts or hi < -jump_pts) else None
                 for *_, lo, hi in steps]
        big = max(steps, key=lambda t: abs(t[2])) if steps else None
        means = g.groupby("k")["error_pct"].mean().sort_index()
        smooth.append({"model": m, "kind": "residual, k random",
                       "max_step_pts": big[2] if big else 0.0, "low": big[3] if big else 0.0,
                       "high": big[4] if big else 0.0, "trials": int(g.groupby("k").size().max()),
                       "k_values": " ".join(str(k) for k in means.index),
                       "errors": " ".join(f"{v:.1f}" for v in means.to_numpy()),
                       "ok": _all_tri(flags) if steps else False})
    ev = pd.DataFrame(rows + smooth)
    words = "; ".join(
        (f"{r.model}: one block deleted raises the error by {r.median_delta_pts:.1f} points on median "
         f"({r.low:.1f}-{r.high:.1f}, the median's interval over blocks)"
         if r.kind == "residual" else f"{r.model}: {r.median_error_pct:.1f} % error on median with one block deleted "
                                      f"({r.low:.1f}-{r.high:.1f} %)")
        for r in ev[ev["kind"].isin(["residual", "plain"])].itertuples())
    for r in smooth:
        words += (f"; {r['model']}, k = {r['k_values']} random blocks deleted: {r['errors']} % (largest step "
                  f"{r['max_step_pts']:.1f} points, 95 % interval {r['low']:.1f} to {r['high']:.1f} over "
                  f"{r['trials']} trials)")
    flags = list(ev["ok"])
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(ev["model"].unique()))


def rule_short_paths(paths: pd.DataFrame) -> Verdict:
    if paths.empty:
        return Verdict(UNTESTED, "needs a residual net")
    rows = []
    for m, g in paths.groupby("model"):
        n = int(g["length"].max())
        peak = int(g.loc[g["total_grad"].idxmax(), "length"])
        lo = g["total_grad_low"] if "total_grad_low" in g else g["total_grad"]
        hi = g["total_grad_high"] if "total_grad_high" in g else g["total_grad"]
        # every length whose interval reaches the highest lower bound could be the peak
        plausible = g.loc[hi.to_numpy() >= float(lo.max()), "length"].astype(int)
        first, last = int(plausible.min()), int(plausible.max())
        short = True if last < n / 2 else False if first >= n / 2 else None
        rows.append({"model": m, "blocks": n, "peak_length": peak, "peak_low": first, "peak_high": last,
                     "mean_length": n / 2, "short": short})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.model}: the total gradient peaks at paths of length {r.peak_length} of {r.blocks} blocks "
                      f"(lengths {r.peak_low}-{r.peak_high} are within the draws' 95 % intervals of the peak; the "
                      f"typical path has {r.mean_length:g})" for r in ev.itertuples())
    flags = list(ev["short"])
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(ev["model"]))


def rule_identity_share(split: pd.DataFrame, threshold: float = 0.5) -> Verdict:
    res = split[split["residual"]]
    if res.empty:
        return Verdict(UNTESTED, "needs a residual net")
    rows = []
    for m, g in res.groupby("model"):
        sd = g["shortcut_share_std"] if "shortcut_share_std" in g else pd.Series(0.0, index=g.index)
        n = g["images"] if "images" in g else pd.Series(1, index=g.index)
        bounds = [mean_interval(v, s_, int(k)) for v, s_, k in zip(g["shortcut_share"], sd.fillna(0.0), n)]
        lo, hi = float(np.median([b[0] for b in bounds])), float(np.median([b[1] for b in bounds]))
        rows.append({"model": m, "median": float(g["shortcut_share"].median()), "low": lo, "high": hi,
                     "min": float(g["shortcut_share"].min()), "max": float(g["shortcut_share"].max()),
                     "dominant": _side(lo, hi, threshold, ABOVE) if lo != threshold else None})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.model}: the shortcut carries {r.median:.2f} of the gradient's norm at the median block "
                      f"(95 % interval {r.low:.2f}-{r.high:.2f}; blocks range from {r.min:.2f} to {r.max:.2f})"
                      for r in ev.itertuples())
    plain = split[~split["residual"]]
    if len(plain):
        words += f"; plain nets: {plain['shortcut_share'].max():.2f} (no shortcut)"
    flags = list(ev["dominant"])
    return Verdict(_all_some(flags), words + _unsettled(flags), ev, tuple(split["model"].unique()))


def rule_train_faster(curves: pd.DataFrame, cards: pd.DataFrame, threshold: float = 20.0) -> Verdict:
    pairs = _pairs(list(cards[~cards["residual"] & ~cards["variant"]]["model"]),
                   list(cards[cards["residual"] & ~cards["variant"]]["model"]))
    if not pairs:
        return Verdict(UNTESTED, "needs a plain and a residual zoo net of the same depth")
    reach = epochs_to_reach(curves, threshold).set_index("model")
    c = cards.set_index("model")
    rows = []
    for p, r, d in pairs:
        ep, er = reach.loc[p, "first_epoch_below"], reach.loc[r, "first_epoch_below"]
        # compare before the first learning-rate drop of either schedule (schedules may differ in length)
        drop = min(c.loc[p, "milestones"][0] / c.loc[p, "steps_per_epoch"], c.loc[r, "milestones"][0] / c.loc[r, "steps_per_epoch"])
        ep = None if ep is None or pd.isna(ep) else int(ep)
        er = None if er is None or pd.isna(er) else int(er)
        comparable = er is not None and er <= drop
        faster = comparable and (ep is None or er < ep)
        rows.append({"plain": p, "residual": r, "depth": d, "plain_epoch": ep, "residual_epoch": er,
                     "first_lr_drop_epoch": drop, "faster": faster})
    ev = pd.DataFrame(rows)
    def epoch(v) -> str:  # the frame holds a missing epoch as NaN and makes the others floats
        return "never" if v is None or pd.isna(v) else str(int(v))

    words = "; ".join(f"{r.depth} layers: training error below {threshold:g} % first at epoch "
                      f"{epoch(r.residual_epoch)} ({r.residual}) vs {epoch(r.plain_epoch)} ({r.plain})"
                      for r in ev.itertuples())
    return Verdict(_all_some(list(ev["faster"])), words + " (augmented batches, train mode, from the cards)", ev,
                   tuple(sorted(set(ev["plain"]) | set(ev["residual"]))))


def rule_gap(cards: pd.DataFrame) -> Verdict:
    pairs = _pairs(list(cards[~cards["residual"] & ~cards["variant"]]["model"]),
                   list(cards[cards["residual"] & ~cards["variant"]]["model"]))
    if not pairs:
        return Verdict(UNTESTED, "needs a plain and a residual zoo net of the same depth")
    c = cards.set_index("model")
    rows = []
    for p, r, d in pairs:
        gp = c.loc[p, "test_error_pct"] - c.loc[p, "train_error_pct"]
        gr = c.loc[r, "test_error_pct"] - c.loc[r, "train_error_pct"]
        var = 0.0  # the four error rates' binomial variances (points²), independent samples
        for m in (p, r):
            for col, ncol, default in (("test_error_pct", "test_images", 10000), ("train_error_pct", "train_images", 50000)):
                q = float(c.loc[m, col]) / 100.0
                var += 1e4 * q * (1 - q) / _n(c.loc[m], ncol, default)
        half = 1.959964 * var ** 0.5
        diff = gr - gp
        rows.append({"plain": p, "residual": r, "depth": d, "plain_gap_pts": gp, "residual_gap_pts": gr,
                     "plain_train_error_pct": c.loc[p, "train_error_pct"], "gap_difference_low": diff - half,
                     "gap_difference_high": diff + half,
                     "residual_smaller_gap": _side(diff - half, diff + half, 0.0, BELOW)})
    ev = pd.DataFrame(rows)
    words = "; ".join(f"{r.depth} layers: test − train error {r.residual_gap_pts:.2f} points ({r.residual}) vs "
                      f"{r.plain_gap_pts:.2f} ({r.plain}, whose training error is {r.plain_train_error_pct:.2f} %; "
                      f"difference {r.gap_difference_low:+.2f} to {r.gap_difference_high:+.2f} points, 95 %)"
                      for r in ev.itertuples())
    flags = list(ev["residual_smaller_gap"])
    return Verdict(_all_some(flags), words + _unsettled(flags), ev,
                   tuple(sorted(set(ev["plain"]) | set(ev["residual"]))))


def rule_sharpness(hessian: pd.DataFrame) -> Verdict:
    if hessian.empty:
        return Verdict(UNTESTED, "not measured: the curvature claim was not asked for (it takes minutes on a CPU)")
    top = hessian[(hessian["quantity"] == "eigenvalue") & (hessian["k"] == 1)].set_index("model")["value"]
    pairs = _pairs([m for m in top.index if not parse_name(m).residual],
                   [m for m in top.index if parse_name(m).residual and not parse_name(m).is_variant])
    if not pairs:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    ev = pd.DataFrame([{"plain": p, "residual": r, "depth": d, "plain_top_eigenvalue": top[p],
                        "residual_top_eigenvalue": top[r], "flatter": top[r] < top[p]} for p, r, d in pairs])
    words = "; ".join(f"{r.depth} layers: top Hessian eigenvalue {r.residual_top_eigenvalue:.4g} ({r.residual}) vs "
                      f"{r.plain_top_eigenvalue:.4g} ({r.plain})" for r in ev.itertuples())
    return Verdict(_all_some(list(ev["flatter"])), words, ev, tuple(sorted(set(ev["plain"]) | set(ev["residual"]))))


# ============================================================================ measuring, claim by claim
def _q(m: Measure, full: dict, quick: dict) -> dict:
    return quick if m.quick else full


def _judge_degradation(m: Measure) -> Verdict:
    return rule_degradation(m.cards())


def _grads(m: Measure, names, **params) -> pd.DataFrame:
    return m.results("gradients", names, **params).get("gradients", pd.DataFrame())


def _judge_vanishing(m: Measure) -> Verdict:
    g = _grads(m, m.plain(), images=min(m.samples, 256), states=("trained",), lambdas=())
    return rule_vanishing(g) if len(g) else rule_vanishing(pd.DataFrame(columns=["residual", "state"]))


def _responses(m: Measure, names) -> dict[str, pd.DataFrame]:
    return m.results("responses", names)


def _judge_small_responses(m: Measure) -> Verdict:
    r = _responses(m, m.plain() + m.residual())
    return rule_small_responses(r.get("response_comparison", pd.DataFrame()))


def _judge_depth_responses(m: Measure) -> Verdict:
    r = _responses(m, m.residual())
    if not r:
        return rule_depth_responses(pd.DataFrame(columns=["residual", "depth"]))
    s = summarize_responses(r["responses"], r["residual_ratio"])
    s["depth"] = [parse_name(n).depth for n in s["model"]]
    return rule_depth_responses(s)


def _judge_cost(m: Measure) -> Verdict:
    from .analyses.cost import interleaved_rounds

    names = m.plain() + m.residual()
    c = m.results("cost", names, **_q(m, {"images": 256, "repeats": 3}, {"images": 8, "repeats": 1})).get("cost")
    if c is None or c.empty:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    pairs = _pairs(m.plain(), m.residual())
    chosen = sorted({x for p in pairs for x in p[:2]})
    times = interleaved_rounds({n: m.model(n) for n in chosen}, **_q(m, {"images": 256, "repeats": 7},
                                                                     {"images": 32, "repeats": 3}))
    return rule_cost(c, times)


def _judge_conv(m: Measure) -> Verdict:
    names = m.names[:4]
    convs = m.results("cost", names, **_q(m, {"images": 256, "repeats": 3}, {"images": 8, "repeats": 1})).get("conv_cost")
    return rule_conv_formula(convs if convs is not None else pd.DataFrame())


def _judge_lambda(m: Measure) -> Verdict:
    res = m.residual()
    if not res:
        return rule_lambda(pd.DataFrame(), pd.DataFrame())
    ref = sorted(res, key=lambda n: parse_name(n).depth)[-1]
    init = _grads(m, [ref], images=min(m.samples, 256), states=(), lambdas=(0.5, 1.0, 1.5))
    scaled = [n for n in m.names if (a := m.arch(n)) is not None and a.residual and a.lam != 1.0]
    depths = {parse_name(n).depth for n in scaled}
    ident_names = [n for n in m.residual() if parse_name(n).depth in depths]
    trained = _grads(m, scaled + ident_names, images=min(m.samples, 256), states=("trained",), lambdas=()) if scaled \
        else pd.DataFrame()
    return rule_lambda(gradient_summary(init) if len(init) else pd.DataFrame(),
                       gradient_summary(trained) if len(trained) else pd.DataFrame())


def _variant_table(m: Measure) -> pd.DataFrame:
    return variant_table([n for n in m.zoo() if parse_name(n).residual])


def _judge_units(m: Measure) -> Verdict:
    return rule_units(_variant_table(m))


def _judge_option_b(m: Measure) -> Verdict:
    return rule_option_b(_variant_table(m))


def _judge_paths(m: Measure) -> Verdict:
    checks = pd.DataFrame([linear_paths_check(n, seed=n) for n in (3, 5, 8)])
    dists = []
    for n in m.residual(original_only=False):
        d = path_distribution(m.model(n).num_blocks)
        d.insert(0, "model", n)
        dists.append(d)
    return rule_paths(checks, pd.concat(dists, ignore_index=True) if dists else
                      pd.DataFrame(columns=["model", "length", "n_paths", "fraction"]))


def _judge_deletion(m: Measure) -> Verdict:
    names = m.plain() + m.residual()
    single = m.results("deletion_single", names).get("deletion_single", pd.DataFrame())
    random = m.results("deletion_random", m.residual(), ks=(0, 2, 4, 6, 8, 10), trials=3).get(
        "deletion_random", pd.DataFrame(columns=["model", "residual", "k", "error_pct"]))
    if single.empty:
        return Verdict(UNTESTED, "needs a plain and a residual net")
    return rule_deletion(single, random)


def _judge_short_paths(m: Measure) -> Verdict:
    p = m.results("paths", m.residual(), **_q(m, {"per_length": 4, "batch": 16, "lengths": None},
                                               {"per_length": 1, "batch": 4, "lengths": None})).get("paths")
    return rule_short_paths(p if p is not None else pd.DataFrame())


def _judge_identity(m: Measure) -> Verdict:
    s = m.results("gradient_split", m.plain() + m.residual(), images=min(m.samples, 64)).get("gradient_split")
    return rule_identity_share(s if s is not None else pd.DataFrame(columns=["residual", "shortcut_share", "model"]))


def _judge_faster(m: Measure) -> Verdict:
    cards = m.cards()
    curves = m.results("training", list(cards["model"])).get("training", pd.DataFrame())
    return rule_train_faster(curves, cards)


def _judge_gap(m: Measure) -> Verdict:
    return rule_gap(m.cards())


def _judge_sharpness(m: Measure) -> Verdict:
    if not m.heavy:
        return rule_sharpness(pd.DataFrame())
    pairs = _pairs(m.plain(), m.residual())
    names = sorted({x for p in pairs for x in p[:2]})
    h = m.results("hessian", names, **_q(m, {"images": min(m.samples, 100), "top_k": 1, "max_iter": 20, "tol": 1e-2,
                                              "trace_iter": 0, "density_runs": 0},
                                          {"images": 8, "top_k": 1, "max_iter": 3, "trace_iter": 0, "density_runs": 0}))
    return rule_sharpness(h.get("hessian", pd.DataFrame()))


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "Degradation is not overfitting",
          "Deeper plain nets have a higher training error than shallower ones, so their higher test error is not "
          "overfitting.",
          "Final training error of each plain zoo net, in eval mode on the 50,000 un-augmented training images "
          "(from the model cards).",
          "holds if every deeper plain net has the higher training error (the 95 % interval of the difference, Newcombe's, "
          "above 0); does not hold if every one has the lower; depends otherwise, or where an interval includes 0.",
          "pages/home.py", "Degradation: training curves", _judge_degradation),
    Claim(2, "Vanishing gradients cause degradation",
          "Degradation is caused by vanishing gradients (the notes), against He et al. 2015: with BN, gradients do "
          "not vanish.",
          "For each trained plain net, the mean over test images of ‖∂loss/∂x‖ at the first block over the same at "
          "the last block (BN with batch statistics, float32).",
          "holds if the ratio's 95 % interval (from the two means' intervals over images) lies under 0.1 in every plain "
          "net; does not hold if it lies above 0.1 in every one; depends otherwise, or where it includes 0.1.",
          "pages/2_Gradient_flow.py", "Gradient flow through depth", _judge_vanishing),
    Claim(3, "Residual functions respond less",
          "The residual functions of a ResNet have smaller responses than the layers of a plain net (He et al. 2015, "
          "Fig. 7).",
          "Per pair of equal depth: the median over the 3x3 layers of each layer's std (per channel, then the mean; "
          "and over all values at once), and the mean over blocks of ‖F(x)‖/‖x‖.",
          "holds if the residual net is smaller in all three readings at every depth; does not hold if in none; "
          "depends (on the reading) otherwise.",
          "pages/1_Responses.py", "Layer responses", _judge_small_responses),
    Claim(4, "Deeper ResNets respond less",
          "The deeper the ResNet, the smaller the magnitudes of its responses.",
          "For the residual nets chosen: the median layer std (both readings) and the mean ‖F(x)‖/‖x‖, by depth.",
          "holds if all three decrease with depth; does not hold if none does; depends otherwise.",
          "pages/1_Responses.py", "Layer responses", _judge_depth_responses),
    Claim(5, "Shortcuts are free",
          "Identity shortcuts add no parameters and no computation.",
          "Parameters; FLOPs counted by torch.utils.flop_counter (convs and matrix products) on one image; the "
          "shortcut's additions, counted apart; time per image of plain vs residual nets measured in turns.",
          "holds if parameters and counted FLOPs are equal and the interval of the time ratio (the median over rounds "
          "of side-by-side timings, its order-statistic interval) lies within 15 % of 1; does not hold if parameters or FLOPs "
          "differ in every pair; depends otherwise, the timing's interval reaching beyond 15 % included.",
          "pages/9_Claims.py", "Cost", _judge_cost),
    Claim(6, "A conv layer costs H·W·C_in·C_out·k²",
          "A convolution costs H·W·C_in·C_out·k² multiply-adds.",
          "Every conv layer: the formula against the FLOP counter's count (2 FLOPs per multiply-add).",
          "holds if every layer matches exactly; does not hold if none does; depends otherwise.",
          "pages/9_Claims.py", "Cost", _judge_conv),
    Claim(7, "λ > 1 explodes, λ < 1 vanishes",
          "With y = F(x) + λx, a shortcut scale λ > 1 makes the gradient explode and λ < 1 makes it vanish.",
          "First-block over last-block input-gradient norm: at initialisation for λ = 0.5, 1, 1.5 on the deepest "
          "residual net chosen, and for nets trained with λ = 0.5 against the identity net.",
          "holds if λ > 1 grows the gradient more than λ = 1 and λ < 1 makes it shrink towards the input (at "
          "initialisation, and in the trained λ nets when chosen), each judged on the ratios' 95 % intervals; does not "
          "hold if neither; depends otherwise, or where the intervals overlap the comparison.",
          "pages/2_Gradient_flow.py", "Scaled shortcuts", _judge_lambda),
    Claim(8, "Full pre-activation is the best unit",
          "Full pre-activation is better than the original unit, and BN after addition is worse.",
          "Test error on the 10,000 test images (model cards) of resnetD, resnetD-preact and resnetD-bnafter.",
          "holds if pre-activation is lower and BN-after-addition higher than the original, each difference's 95 % "
          "interval (Newcombe's, on the 10,000 test images) excluding 0; does not hold if both the other way; depends "
          "otherwise, or where an interval includes 0.",
          "pages/7_Identity_mappings.py", "The variant zoo", _judge_units),
    Claim(9, "Projection shortcuts beat zero-padding",
          "Option B (1x1 projections where the shape changes) is slightly better than option A (zero-padding).",
          "Test error (model cards) of resnetDb against resnetD.",
          "holds if option B's error is lower, the difference's 95 % interval (Newcombe's) below 0; does not hold if "
          "that interval lies above 0; depends (a tie at this many test images) where it includes 0.",
          "pages/7_Identity_mappings.py", "The variant zoo", _judge_option_b),
    Claim(10, "A ResNet is 2^n paths",
          "A ResNet of n blocks unrolls into 2^n paths (3 blocks: 8 paths), whose lengths are Binomial(n, ½).",
          "A linear residual net of 3, 5 and 8 blocks unrolled path by path (float64): the count, the sum of the "
          "paths against the net's output, the length histogram; and each chosen net's path-length distribution.",
          "holds if the counts are 2^n, the paths sum to the output to 1e-9, and the lengths are binomial.",
          "pages/3_Block_deletion.py", "Paths", _judge_paths),
    Claim(11, "Deleting a block barely hurts a ResNet",
          "Deleting one block barely hurts a ResNet while a plain net collapses; deleting more blocks degrades a "
          "ResNet smoothly (Veit et al. 2016).",
          "Test error with each non-downsampling block deleted (median over blocks), and with k = 0-10 random "
          "blocks deleted (3 trials each).",
          "holds if one deletion raises a ResNet's error by under 5 points on median, leaves a plain net above 50 % "
          "error (each median's order-statistic interval over blocks on the right side), and no step of k changes a "
          "ResNet's mean error by more than 20 points (each step's Welch interval over trials within ±20); does not hold if "
          "none of these; depends otherwise, or where an interval reaches its threshold.",
          "pages/3_Block_deletion.py", "Delete one block / Delete k random blocks", _judge_deletion),
    Claim(12, "The gradient comes from short paths",
          "The gradient comes mainly from short paths (Veit et al. 2016 find lengths 5-17 of 54 blocks).",
          "Veit et al.'s measurement: the gradient at block 0's input carried by paths of each length k, times the "
          "number of such paths; where it peaks.",
          "holds if every length that could be the peak (its 95 % interval over the draws reaches the highest lower "
          "bound) lies below n/2, the typical path length, in every residual net; does not hold if all lie at or "
          "above n/2; depends otherwise.",
          "pages/3_Block_deletion.py", "Paths", _judge_short_paths),
    Claim(13, "The gradient has an identity term",
          "Through a residual block the gradient has an identity term, ∂(F(x) + x)/∂x = ∂F/∂x + I, that carries much "
          "of it.",
          "Per block, the part of ∂loss/∂x that flows back through the shortcut and the part through the branch; "
          "the shortcut's share of their norms, mean over images.",
          "holds if the shortcut carries at least half at the median block of every residual net (the 95 % interval "
          "over images above 0.5); does not hold if below 0.5 in every one; depends otherwise.",
          "pages/2_Gradient_flow.py", "The identity term", _judge_identity),
    Claim(14, "Residual nets train faster",
          "Residual nets train faster than plain nets of the same depth.",
          "From the cards' per-epoch history: the first epoch whose training error (augmented batches) is below "
          "20 %, compared before the first learning-rate drop (schedules of different lengths drop at different "
          "epochs).",
          "holds if the residual net gets there first at every depth; does not hold if at none; depends otherwise.",
          "pages/home.py", "Degradation: training curves", _judge_faster),
    Claim(15, "Residual nets overfit less",
          "Residual nets overfit less (a smaller gap between test and training error) than plain nets.",
          "Test error minus training error (model cards), plain against residual at equal depth.",
          "holds if the residual gap is smaller at every depth (the difference's 95 % interval, from the four error "
          "rates' binomial spreads, below 0); does not hold if above 0 at every depth; depends otherwise.",
          "pages/7_Identity_mappings.py", "The variant zoo", _judge_gap),
    Claim(16, "The residual loss surface is smoother",
          "The loss surface of a residual net is smoother than a plain net's (Li et al. 2018).",
          "The top eigenvalue of the Hessian of the mean test loss (power iteration, float32, eval-mode BN).",
          "holds if the residual net's top eigenvalue is smaller at every depth; does not hold if at none; depends "
          "otherwise.",
          "pages/8_Curvature.py", "Top eigenvalues of the Hessian", _judge_sharpness, cost="heavy"),
)


def judge_all(m: Measure, progress=None) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """(one row per claim, {claim id: its evidence table})."""
    rows, evidence = [], {}
    for i, c in enumerate(CLAIMS):
        if progress:
            progress(i / len(CLAIMS), f"claim {c.id}: {c.title}")
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
    return pd.DataFrame(rows), evidence


def to_markdown(table: pd.DataFrame, title: str = "What the claims say") -> str:
    """A readable report a student can hand in: every claim, its verdict, the numbers and the rule."""
    lines = [f"# {title}", ""]
    if len(table):
        r0 = table.iloc[0]
        lines += [f"Models: {', '.join(sorted(set(', '.join(table['models']).split(', '))))}. Test images per "
                  f"measurement: {r0['samples']}, seed {r0['seed']}. Verdicts come from the fixed rule under each "
                  "claim, applied to the numbers shown.", ""]
        counts = table["verdict"].value_counts()
        lines += ["Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, DEPENDS, UNTESTED)) + ".", ""]
    for r in table.itertuples():
        lines += [f"## {r.id}. {r.claim}: **{r.verdict}**", "", f"*Claim.* {r.statement}", "",
                  f"*Measured.* {r.numbers}.", "", f"*How.* {r.measurement}", "", f"*Rule.* {r.rule}", "",
                  f"*Evidence.* `{r.page}`, {r.chart}.", ""]
    return "\n".join(lines).rstrip() + "\n"


# ============================================================================ the CLI's and the report's measure
def measure_from_report(names, samples: int, seed: int, data=None, device=None, models: dict | None = None,
                        heavy: bool = True, quick: bool = False) -> Measure:
    """A Measure that runs the registered analyses through ``report.compute`` (each result kept for the run)."""
    from .engine.report import compute
    from .core.zoo import default_device, load_pretrained

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


CLAIM_COLUMNS = ("id", "claim", "statement", "verdict", "numbers", "measurement", "rule", "models", "samples", "seed",
                 "page", "chart")


def _run(ctx) -> dict[str, pd.DataFrame]:
    m = measure_from_report(ctx.names, ctx.samples, ctx.seed, data=ctx.data, device=ctx.device, models=ctx.models,
                            heavy=ctx.params["heavy"], quick=ctx.params["quick"])
    table, _ = judge_all(m, progress=ctx.progress)
    return {"claims": table}


def _documents(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    return {"claims.md": to_markdown(tables["claims"])} if "claims" in tables else {}


def _register() -> None:
    from .engine.registry import Analysis, Table, register

    register(Analysis(
        name="claims", title="Claims: every claim of the notes, judged by a measurement", run=_run, scope="zoo",
        documents=_documents, page="pages/9_Claims.py", order=95,
        defaults={"heavy": True, "quick": False}, quick={"heavy": False, "quick": True},
        tables=(Table("claims", CLAIM_COLUMNS),)))


_register()


def readme_block(markdown: str, levels: int = 2) -> str:
    """``claims.md`` as a section of a longer document: every heading ``levels`` deeper."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"
