"""Every claim's verdict rule on synthetic tables whose answer is known (holds and does not hold)."""

import pandas as pd
import pytest

from analysis.claims import CLAIMS
from analysis.claims import rules as C


def cards(rows):
    """A zoo table (the columns the real one has: analysis.core.cards.ZOO_COLUMNS) for made-up models."""
    from analysis.core.cards import ZOO_COLUMNS

    base = {"variant": False, "iterations": 64000, "first_lr_drop_epoch": 32000 / 390}
    df = pd.DataFrame([{**base, **r} for r in rows])
    assert set(df.columns) <= set(ZOO_COLUMNS), set(df.columns) - set(ZOO_COLUMNS)  # no column the zoo lacks
    return df


def test_degradation():
    good = cards([{"model": "plain20", "residual": False, "depth": 20, "train_error_pct": 2.0, "test_error_pct": 14},
                  {"model": "plain56", "residual": False, "depth": 56, "train_error_pct": 8.0, "test_error_pct": 16}])
    assert C.rule_degradation(good).verdict == C.HOLDS
    bad = good.assign(train_error_pct=[8.0, 2.0])
    assert C.rule_degradation(bad).verdict == C.FAILS
    assert C.rule_degradation(good.iloc[:1]).verdict == C.UNTESTED


def grads(model, residual, firsts_lasts, state="trained", lam=0.0):
    rows = []
    for i, g in enumerate(firsts_lasts):
        rows.append({"model": model, "residual": residual, "state": state, "lambda": lam, "block_index": i,
                     "grad_input_l2": g})
    return pd.DataFrame(rows)


def test_vanishing():
    v = C.rule_vanishing(grads("plain56", False, [0.01, 0.5, 1.0]))
    assert v.verdict == C.HOLDS and "0.01x" in v.summary
    assert C.rule_vanishing(grads("plain56", False, [3.0, 1.0, 1.0])).verdict == C.FAILS
    both = pd.concat([grads("plain56", False, [3.0, 1.0]), grads("plain110", False, [0.01, 1.0])])
    assert C.rule_vanishing(both).verdict == C.DEPENDS


def test_small_and_deeper_responses():
    cmp = pd.DataFrame({"depth": [20, 20, 20], "plain": "plain20", "residual": "resnet20",
                        "measure": ["std", "std_all", "ratio"], "plain_value": [0.8, 0.9, 1.6],
                        "residual_value": [0.6, 0.7, 0.9], "residual_smaller": [True, True, True]})
    assert C.rule_small_responses(cmp).verdict == C.HOLDS
    mixed = cmp.assign(residual_smaller=[False, True, True], residual_value=[0.9, 0.7, 0.9])
    v = C.rule_small_responses(mixed)
    assert v.verdict == C.DEPENDS and "std at 20 layers" in v.summary
    assert C.rule_small_responses(cmp.assign(residual_smaller=False)).verdict == C.FAILS
    assert C.rule_small_responses(cmp.iloc[:0]).verdict == C.UNTESTED
    s = pd.DataFrame({"model": ["resnet20", "resnet56"], "residual": True, "depth": [20, 56],
                      "median_std": [0.6, 0.4], "median_std_all": [0.7, 0.5], "mean_ratio": [0.9, 0.3]})
    assert C.rule_depth_responses(s).verdict == C.HOLDS
    assert C.rule_depth_responses(s.assign(median_std=[0.4, 0.6], median_std_all=[0.5, 0.7],
                                           mean_ratio=[0.3, 0.9])).verdict == C.FAILS


def cost_rows(params_res=269722, flops_res=81102080):
    return pd.DataFrame([
        {"model": "plain20", "params": 269722, "flops_per_image": 81102080, "adds_per_image": 0},
        {"model": "resnet20", "params": params_res, "flops_per_image": flops_res, "adds_per_image": 86016}])


def rounds(plain, residual):
    return {"plain20": list(plain), "resnet20": list(residual)}


def test_cost_and_conv_formula():
    assert C.rule_cost(cost_rows(), rounds([1.0] * 7, [1.05] * 7)).verdict == C.HOLDS
    v = C.rule_cost(cost_rows(), rounds([1.0] * 7, [1.5] * 7))
    assert v.verdict == C.DEPENDS and "differs by more than 15%" in v.summary
    # a busy machine: the ratio ranges 0.95-1.30 over 7 rounds measured in turns, so it cannot tell
    noisy = C.rule_cost(cost_rows(), rounds([1.0] * 7, [0.95, 1.02, 1.05, 1.1, 1.08, 1.30, 1.0]))
    assert noisy.verdict == C.DEPENDS and "cannot tell" in noisy.summary and "0.95-1.30x over 7 rounds" in noisy.summary
    assert "interval is wider than the 15% tolerance" in noisy.summary
    # a quiet machine: the ratio is 1.10-1.16 in every round, an interval narrower than the tolerance that still
    # reaches past it: the words say the ratio lies near the tolerance, not that the machine was busy
    near = C.rule_cost(cost_rows(), rounds([1.0] * 7, [1.10, 1.12, 1.13, 1.13, 1.14, 1.16, 1.12]))
    assert near.verdict == C.DEPENDS and "1.13-1.13x the plain nets' time here, near the 15% tolerance" in near.summary
    assert "busy" not in near.summary
    assert C.rule_cost(cost_rows(params_res=300000), rounds([1.0] * 7, [1.0] * 7)).verdict == C.FAILS
    conv = pd.DataFrame({"model": "m", "layer": ["a", "b"], "stride": [1, 2], "formula_macs": [10, 20],
                         "formula_macs_input_size": [10, 80], "counted_macs": [10, 20], "counted_flops": [20, 40]})
    assert C.rule_conv_formula(conv).verdict == C.HOLDS
    assert C.rule_conv_formula(conv.assign(counted_flops=[21, 41])).verdict == C.FAILS


def summ(model, lams_ratios, state):
    return pd.DataFrame([{"model": model, "state": state, "lambda": l, "first_block_grad": r, "last_block_grad": 1.0,
                          "first_over_last": r, "blocks": 27} for l, r in lams_ratios])


def test_lambda():
    init_ok = summ("resnet56", [(0.5, 0.01), (1.0, 5.0), (1.5, 100.0)], "init")
    assert C.rule_lambda(init_ok, pd.DataFrame()).verdict == C.HOLDS
    init_half = summ("resnet56", [(0.5, 2000.0), (1.0, 36.0), (1.5, 4e4)], "init")
    v = C.rule_lambda(init_half, pd.DataFrame())
    assert v.verdict == C.DEPENDS and "does not make it vanish" in v.summary and "Untested on trained nets" in v.summary
    init_no = summ("resnet56", [(0.5, 2000.0), (1.0, 36.0), (1.5, 10.0)], "init")
    trained = pd.concat([summ("resnet56", [(1.0, 6.0)], "trained"), summ("resnet56-scale0.5", [(0.5, 21.0)], "trained")])
    assert C.rule_lambda(init_no, trained).verdict == C.FAILS
    assert C.rule_lambda(pd.DataFrame(), pd.DataFrame()).verdict == C.UNTESTED


def variants(rows):
    return pd.DataFrame([{"depth": 56, **r} for r in rows])


def test_units_and_option_b():
    """On 10,000 test images a difference of one error rate from another needs about 0.85 points to leave its 95 %
    interval: 10.7 vs 10.4 is a tie (the old rule, a 0.1-point margin, called it a win)."""
    t = variants([{"unit": "original", "shortcut": "identity", "test_error_pct": 10.7},
                  {"unit": "full-preact", "shortcut": "identity", "test_error_pct": 9.2},
                  {"unit": "bn-after-add", "shortcut": "identity", "test_error_pct": 12.6},
                  {"unit": "original", "shortcut": "B", "test_error_pct": 9.5}])
    assert C.rule_units(t).verdict == C.HOLDS and C.rule_option_b(t).verdict == C.HOLDS
    swapped = t.assign(test_error_pct=[10.7, 12.6, 9.2, 11.9])
    assert C.rule_units(swapped).verdict == C.FAILS and C.rule_option_b(swapped).verdict == C.FAILS
    tie = C.rule_option_b(t.assign(test_error_pct=[10.7, 9.2, 12.6, 10.4]))
    assert tie.verdict == C.DEPENDS and "cannot tell" in tie.summary
    # B minus A: -1.2 points; the normal approximation gives -1.2 ± 1.96·0.426 = -2.03 to -0.37
    assert "B minus A -2.04 to -0.36 points" in C.rule_option_b(t).summary
    few = C.rule_option_b(t.assign(test_images=100))  # the same errors on 100 images each: a tie
    assert few.verdict == C.DEPENDS
    assert C.rule_units(t.iloc[:1]).verdict == C.UNTESTED


def test_paths_unroll_a_linear_net_into_two_to_the_n():
    chk = C.linear_paths_check(3)
    assert chk["paths"] == 8 and chk["max_abs_diff"] < 1e-12 and chk["lengths_binomial"]
    from analysis.analyses.deletion import path_distribution

    d = path_distribution(27).assign(model="resnet56")
    assert C.rule_paths(pd.DataFrame([chk]), d).verdict == C.HOLDS
    assert C.rule_paths(pd.DataFrame([{**chk, "paths": 7}]), d).verdict == C.FAILS


def deletion_tables(res_delta, plain_err, steps):
    single = pd.DataFrame([{"model": "resnet56", "residual": True, "downsample": False, "delta_error_pct": res_delta,
                            "error_pct": 10 + res_delta}] * 3 +
                          [{"model": "plain56", "residual": False, "downsample": False, "delta_error_pct": 70.0,
                            "error_pct": plain_err}] * 3)
    err, rows = 10.0, []
    for k, s in enumerate([0.0] + steps):
        err += s
        rows.append({"model": "resnet56", "residual": True, "k": 2 * k, "error_pct": err})
    return single, pd.DataFrame(rows)


def test_deletion():
    assert C.rule_deletion(*deletion_tables(1.0, 88.0, [2.0, 5.0, 10.0])).verdict == C.HOLDS
    assert C.rule_deletion(*deletion_tables(30.0, 20.0, [40.0])).verdict == C.FAILS
    assert C.rule_deletion(*deletion_tables(1.0, 88.0, [40.0])).verdict == C.DEPENDS


def test_short_paths_and_identity_share():
    p = pd.DataFrame({"model": "resnet56", "length": range(28), "total_grad": [0.1 if k != 7 else 5.0 for k in range(28)]})
    assert C.rule_short_paths(p).verdict == C.HOLDS
    assert C.rule_short_paths(p.assign(total_grad=[5.0 if k == 20 else 0.1 for k in range(28)])).verdict == C.FAILS
    s = pd.DataFrame({"model": ["resnet56"] * 3 + ["plain56"] * 3, "residual": [True] * 3 + [False] * 3,
                      "shortcut_share": [0.6, 0.7, 0.8, 0, 0, 0]})
    assert C.rule_identity_share(s).verdict == C.HOLDS
    assert C.rule_identity_share(s.assign(shortcut_share=[0.1, 0.2, 0.3, 0, 0, 0])).verdict == C.FAILS


def curves(model, errors):
    return pd.DataFrame({"model": model, "epoch": range(1, len(errors) + 1), "train_error_pct": errors,
                         "test_error_pct": errors})


def test_train_faster_and_gap():
    cd = cards([{"model": "plain56", "residual": False, "depth": 56, "train_error_pct": 7.8, "test_error_pct": 16.2},
                {"model": "resnet56", "residual": True, "depth": 56, "train_error_pct": 0.1, "test_error_pct": 10.7}])
    fast = pd.concat([curves("plain56", [50, 40, 30, 25, 19]), curves("resnet56", [40, 19, 10, 5, 3])])
    assert C.rule_train_faster(fast, cd).verdict == C.HOLDS
    never = C.rule_train_faster(pd.concat([curves("plain56", [50, 40, 30, 25, 21]), curves("resnet56", [40, 19, 10, 5, 3])]), cd)
    assert never.verdict == C.HOLDS and "vs never (plain56)" in never.summary and ".0 (" not in never.summary
    slow = pd.concat([curves("plain56", [40, 19, 10, 5, 3]), curves("resnet56", [50, 40, 30, 25, 19])])
    assert C.rule_train_faster(slow, cd).verdict == C.FAILS
    v = C.rule_gap(cd)  # 10.6 points vs 8.4: the residual net's gap is the larger one
    assert v.verdict == C.FAILS and "10.60 points (resnet56) vs 8.40" in v.summary
    assert C.rule_gap(cd.assign(test_error_pct=[20.0, 5.0])).verdict == C.HOLDS


def test_sharpness():
    h = pd.DataFrame({"model": ["plain56", "resnet56"], "quantity": "eigenvalue", "k": 1, "value": [500.0, 300.0]})
    assert C.rule_sharpness(h).verdict == C.HOLDS
    assert C.rule_sharpness(h.assign(value=[300.0, 500.0])).verdict == C.FAILS
    assert C.rule_sharpness(pd.DataFrame()).verdict == C.UNTESTED


def test_every_claim_has_a_judge_a_rule_and_a_page_numbered_in_order():
    assert [c.id for c in CLAIMS] == list(range(1, len(CLAIMS) + 1))
    for c in CLAIMS:
        assert callable(c.judge)
        assert c.statement.endswith(".") and c.rule and c.page.startswith("pages/") and c.chart


def test_the_readme_shows_the_shipped_claims_report_verbatim():
    """docs/claims.md is what `to_markdown` makes of docs/claims.csv (the CLI's output on the shipped zoo), and
    the README's claims section is that file, headings demoted: no verdict in the README is written by hand."""
    from pathlib import Path

    from analysis.claims.text import readme_block, to_markdown

    root = Path(__file__).resolve().parents[2]
    table = pd.read_csv(root / "docs" / "claims.csv")
    md = (root / "docs" / "claims.md").read_text()
    assert to_markdown(table) == md
    readme = (root / "README.md").read_text()
    start, end = "<!-- claims:start -->\n", "<!-- claims:end -->"
    assert readme.count(start) == 1 and readme.count(end) == 1
    block = readme[readme.index(start) + len(start):readme.index(end)]
    assert block == readme_block(md)
    assert len(table) == len(CLAIMS) and set(table["verdict"]) <= set(C.VERDICTS)


def test_the_claims_page_opens_on_the_shipped_verdicts_with_the_command_that_made_them():
    """docs/claims.json is the manifest of the run behind docs/claims.csv: the same verdicts, and the command,
    models, images and seed that the Claims page prints above them."""
    from analysis.claims import shipped
    from analysis.claims.text import verdict_line

    table, manifest = shipped()
    assert manifest["verdicts"] == dict(zip(table["id"].astype(str), table["verdict"]))
    assert manifest["command"].startswith("python -m analysis claims") and manifest["samples"] > 0
    assert set(manifest["models"]) >= {"plain20", "plain56", "resnet20", "resnet56"}
    line = verdict_line(table)
    counts = table["verdict"].value_counts()
    assert line.startswith("Verdicts: ") and f"{counts.get('holds', 0)} holds" in line


# ---------------------------------------------------------------------------- noise must not flip a verdict
# Each rule is fed 200 seeded noisy measurements of one truth. Away from its threshold (about one noise unit or more)
# a rule on intervals gives one definite verdict or "depends", never both holds and does not hold. At the threshold itself no rule can be right every time: a definite verdict
# then comes only at the intervals' nominal rate (2.5 % each side), against about half the draws for a point value.
def _verdicts(draw, rule, point, n=200):
    seen, points = [], []
    for _ in range(n):
        evidence = draw()
        seen.append(rule(evidence))
        points.append(point(evidence))
    return seen, points


def _check(seen, points, at_threshold):
    if at_threshold:
        assert seen.count(C.HOLDS) <= 0.05 * len(seen) and seen.count(C.FAILS) <= 0.05 * len(seen), set(seen)
        assert 0.1 * len(points) < points.count(True) < 0.9 * len(points)  # the point value: goes both ways, often
    else:
        assert not {C.HOLDS, C.FAILS} <= set(seen), set(seen)


@pytest.mark.parametrize("step_true", [17.0, 20.0, 23.0])
def test_deletion_verdicts_do_not_flip_with_noise(step_true):
    """Claim 11: the largest step of the mean error between consecutive k against 20 points, 3 trials per k
    with a spread of 3 points (the issue saw it turn on 20.7 against 20)."""
    import numpy as np

    rng = np.random.default_rng(int(step_true))
    single, _ = deletion_tables(1.0, 88.0, [])

    def draw():
        rows = [{"model": "resnet56", "residual": True, "k": 0, "trial": 0, "error_pct": 10.0}]
        rows += [{"model": "resnet56", "residual": True, "k": 2, "trial": t,
                  "error_pct": 10.0 + step_true + rng.normal(0, 3.0)} for t in range(3)]
        return pd.DataFrame(rows)

    seen, points = _verdicts(draw, lambda rnd: C.rule_deletion(single, rnd).verdict,
                             lambda rnd: bool(rnd.loc[rnd["k"] == 2, "error_pct"].mean() - 10.0 <= 20.0))
    _check(seen, points, at_threshold=step_true == 20.0)


@pytest.mark.parametrize("true_ratio", [1.0, 1.15, 1.35])
def test_cost_verdicts_do_not_flip_with_timing_noise(true_ratio):
    """Claim 5: 7 rounds of side-by-side timings on a loaded machine (each timing off by about 8 %)."""
    import numpy as np

    rng = np.random.default_rng(int(true_ratio * 100))

    def draw():
        plain = 0.3 * np.exp(rng.normal(0, 0.08, 7))
        return rounds(plain, plain * true_ratio * np.exp(rng.normal(0, 0.08, 7)))

    def verdict(t):
        v = C.rule_cost(cost_rows(), t)
        return C.FAILS if "differs by more than" in v.summary else v.verdict  # the timing's own verdict

    seen, points = _verdicts(draw, verdict, lambda t: bool(min(t["resnet20"]) / min(t["plain20"]) <= 1.15))
    _check(seen, points, at_threshold=true_ratio == 1.15)


@pytest.mark.parametrize("true_gap", [-1.0, 0.0, 1.0])
def test_option_b_verdicts_do_not_flip_with_sampling_noise(true_gap):
    """Claim 9: two nets whose true test errors differ by a point or not at all, each measured on 10,000 images."""
    import numpy as np

    rng = np.random.default_rng(int(100 + true_gap * 10))

    def draw():
        a = 100 * rng.binomial(10000, 0.107) / 10000
        b = 100 * rng.binomial(10000, 0.107 + true_gap / 100) / 10000
        return variants([{"unit": "original", "shortcut": "identity", "test_error_pct": a},
                         {"unit": "original", "shortcut": "B", "test_error_pct": b}])

    seen, points = _verdicts(draw, lambda t: C.rule_option_b(t).verdict,
                             lambda t: bool(t["test_error_pct"].iloc[1] < t["test_error_pct"].iloc[0]))
    if true_gap == 0.0:
        _check(seen, points, at_threshold=True)
    else:  # a point apart, the old 0.1-point margin still went the wrong way on some draws; intervals never do
        assert not {C.HOLDS, C.FAILS} <= set(seen), set(seen)


# ---------------------------------------------------------------------------- depth (claims 17-21)
from analysis.claims import rules_depth as D  # noqa: E402


def _construction(constructed_train=1.9, source_train=1.9, trained=7.8):
    return pd.DataFrame([{"model": "plain56-from-plain20", "source": "plain20", "source_depth": 20, "depth": 56,
                          "trained": "plain56", "constructed_train_error_pct": constructed_train,
                          "constructed_test_error_pct": 13.5, "source_train_error_pct": source_train,
                          "source_test_error_pct": 13.5, "trained_train_error_pct": trained,
                          "trained_test_error_pct": 16.2, "train_images": 50000, "test_images": 10000,
                          "new_blocks": 18}])


def test_construction():
    v = D.rule_construction(_construction())
    assert v.verdict == C.HOLDS and "worse than the construction" in v.summary
    assert D.rule_construction(_construction(constructed_train=9.0)).verdict == C.FAILS  # 9.0 vs 1.9 on 50k images
    assert D.rule_construction(_construction().iloc[:0]).verdict == C.UNTESTED


def _readout(model, residual, errors, kind="head", n=500):
    from analysis.core.stats import wilson

    rows = []
    for i, (stage, e) in enumerate(zip((0, 1, 2, 3), errors)):
        lo, hi = wilson(round(e * n / 100), n)
        rows.append({"model": model, "residual": residual, "point": f"p{i}", "point_index": i - 1, "stage": stage,
                     "readout": kind, "error_pct": e, "error_low": lo, "error_high": hi, "images": n})
    return pd.DataFrame(rows)


def test_readouts_and_separability():
    good = pd.concat([_readout("resnet56", True, [90, 70, 40, 10]), _readout("plain56", False, [90, 90, 89, 15])])
    assert D.rule_readouts(good).verdict == C.HOLDS
    bad = pd.concat([_readout("resnet56", True, [30, 60, 90, 96]), _readout("plain56", False, [90, 40, 30, 15])])
    assert D.rule_readouts(bad).verdict == C.FAILS
    close = pd.concat([_readout("resnet56", True, [90, 70, 68, 10]), _readout("plain56", False, [90, 90, 89, 15])])
    v = D.rule_readouts(close)
    assert v.verdict == C.DEPENDS and "cannot tell" in v.summary  # 70 vs 68 % on 500 images: a tie
    probes = _readout("resnet56", True, [65, 55, 35, 11], kind="probe")
    assert D.rule_separability(probes).verdict == C.HOLDS
    assert D.rule_separability(_readout("m", True, [20, 40, 60, 80], kind="probe")).verdict == C.FAILS


def _recovery(model, residual, r2s, half=0.02):
    return pd.DataFrame([{"model": model, "residual": residual, "point": f"p{i}", "point_index": i - 1,
                          "stage": stage, "r2": r, "r2_low": r - half, "r2_high": r + half}
                         for i, (stage, r) in enumerate(zip((0, 1, 2, 3), r2s))])


def test_recovery_claims():
    t = pd.concat([_recovery("resnet56", True, [0.8, 0.6, 0.4, 0.2]), _recovery("plain56", False, [0.8, 0.4, 0.2, 0.0])])
    assert D.rule_recovery_residual(t).verdict == C.HOLDS
    swapped = pd.concat([_recovery("resnet56", True, [0.8, 0.4, 0.2, 0.0]),
                         _recovery("plain56", False, [0.8, 0.6, 0.4, 0.2])])
    assert D.rule_recovery_residual(swapped).verdict == C.FAILS
    v = D.rule_more_information(t)  # what can be recovered falls with depth in both nets
    assert v.verdict == C.FAILS and "0.800 from the stem's output" in v.summary
    assert D.rule_more_information(_recovery("m", True, [0.2, 0.3, 0.5, 0.7])).verdict == C.HOLDS


def test_the_heavy_claims_are_those_whose_judges_read_the_hessian():
    """The Claims page names the claims its curvature switch adds (it once named the last claim, whichever it was)."""
    import inspect

    from analysis.claims import HEAVY_IDS

    assert HEAVY_IDS and HEAVY_IDS == tuple(c.id for c in CLAIMS if '"hessian"' in inspect.getsource(c.judge))
