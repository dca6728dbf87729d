"""The claims' rules: pure functions of measured tables that return a verdict, the numbers in words, and the
evidence table they decided on. No rule runs a measurement; ``tests/claims/test_rules.py`` checks each on
synthetic tables whose answer is known, and on noisy ones (a verdict must not flip with noise).

A rule compares intervals, not point values (:mod:`analysis.core.stats`): evidence whose interval straddles the
threshold gives "depends" and says that more images or trials would settle it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..analyses.curves import epochs_to_reach
from ..analyses.gradients import gradient_summary
from ..core.stats import ABOVE, BELOW, STRADDLES, compare, mean_interval, median_interval, newcombe_diff, welch_diff
from ..core.zoo import pairs

HOLDS, FAILS, DEPENDS, UNTESTED = "holds", "does not hold", "depends", "untested"
VERDICTS = (HOLDS, FAILS, DEPENDS, UNTESTED)
UNSETTLED = ("an interval straddles the rule's threshold, so the evidence cannot tell: more test images or trials "
             "would settle it")


@dataclass
class Verdict:
    verdict: str
    summary: str  # the numbers, in words
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: tuple[str, ...] = ()


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
    """``times``: ms per image of each net, one value per round of :func:`cost.interleaved_rounds` (the nets measured
    in turns). A timing enters the verdict only as the ratio of two nets measured in one round, with the spread over
    the rounds: the order-statistic interval of the median ratio (7 rounds: the smallest and largest ratio, 98 %)."""
    found = pairs(cost["model"])
    if not found:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    c = cost.set_index("model")
    rows = []
    for p, r, d in found:
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
    if v == DEPENDS and same.all():  # why the timing gives no verdict: a real gap, a wide interval or a ratio near it
        wide = any(r.time_ratio_high / r.time_ratio_low > 1 + tolerance for r in ev.itertuples())
        words += ". Parameters and counted FLOPs are equal; " + (
            f"the measured time differs by more than {tolerance:.0%}" if any(t is False for t in timing) else
            f"the time ratio's interval is wider than the {tolerance:.0%} tolerance (the rounds spread, as on a busy "
            "machine), so the timing cannot tell: more rounds would settle it" if wide else f"the timing is narrow, "
            f"but the residual nets take {ev['time_ratio'].min():.2f}-{ev['time_ratio'].max():.2f}x the plain nets' time "
            f"here, near the {tolerance:.0%} tolerance, so it cannot tell either way: the work they add is the shortcut "
            "additions (and option A's pads), which the FLOP count leaves out")
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
    ref_lo, ref_hi = float(one["first_over_last_low"]), float(one["first_over_last_high"])
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
    found = pairs(cards[~cards["variant"]]["model"])
    if not found:
        return Verdict(UNTESTED, "needs a plain and a residual zoo net of the same depth")
    reach = epochs_to_reach(curves, threshold).set_index("model")
    c = cards.set_index("model")
    rows = []
    for p, r, d in found:
        ep, er = reach.loc[p, "first_epoch_below"], reach.loc[r, "first_epoch_below"]
        # compare before the first learning-rate drop of either schedule (schedules may differ in length)
        drop = min(c.loc[p, "first_lr_drop_epoch"], c.loc[r, "first_lr_drop_epoch"])
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
    found = pairs(cards[~cards["variant"]]["model"])
    if not found:
        return Verdict(UNTESTED, "needs a plain and a residual zoo net of the same depth")
    c = cards.set_index("model")
    rows = []
    for p, r, d in found:
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
    found = pairs(top.index)
    if not found:
        return Verdict(UNTESTED, "needs a plain and a residual net of the same depth")
    ev = pd.DataFrame([{"plain": p, "residual": r, "depth": d, "plain_top_eigenvalue": top[p],
                        "residual_top_eigenvalue": top[r], "flatter": top[r] < top[p]} for p, r, d in found])
    words = "; ".join(f"{r.depth} layers: top Hessian eigenvalue {r.residual_top_eigenvalue:.4g} ({r.residual}) vs "
                      f"{r.plain_top_eigenvalue:.4g} ({r.plain})" for r in ev.itertuples())
    return Verdict(_all_some(list(ev["flatter"])), words, ev, tuple(sorted(set(ev["plain"]) | set(ev["residual"]))))
