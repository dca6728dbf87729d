"""The computed sentences under the charts (findings tables): known answers on small hand-made tables."""

import pandas as pd

from analysis.analyses.attributions import conductance_findings
from analysis.analyses.deletion import paths_findings, random_findings, single_findings
from analysis.analyses.landscape import landscape_findings


def _single(model, residual, rises, intact=10.0):
    return pd.DataFrame({"model": model, "residual": residual, "block": [f"b{i}" for i in range(len(rises))],
                         "downsample": False, "intact_error_pct": intact,
                         "delta_error_pct": rises, "error_pct": [intact + r for r in rises]})


def test_single_block_findings_give_the_median_rise_and_say_whether_veits_contrast_shows():
    df = pd.concat([_single("resnet20", True, [1.0, 2.0, 9.0]), _single("plain20", False, [30.0, 50.0, 70.0])])
    f = single_findings(df)
    assert list(f["model"]) == ["resnet20", "plain20", "all"]
    assert "raises the error by 2.0 points on median, from 10.0 % intact (the worst, b2, to 19.0 %)" in f["sentence"][0]
    assert "every residual net degrades less than every plain net" in f["sentence"][2]
    flipped = single_findings(pd.concat([_single("resnet20", True, [60.0]), _single("plain20", False, [30.0])]))
    assert "does not show on these models" in flipped["sentence"].iloc[-1]


def test_random_deletion_slope_is_the_least_squares_slope():
    summ = pd.DataFrame({"model": "m", "k": [0, 1, 2, 3], "mean_error_pct": [10.0, 13.0, 16.0, 19.0]})
    assert "rises by 3.0 points per deleted block (least squares over k = 0-3), from 10.0 % to 19.0 %" in \
        random_findings(summ)["sentence"][0]
    assert random_findings(summ.iloc[:1]).empty  # one k: no slope


def test_paths_findings_name_the_peak_and_the_lengths_its_interval_cannot_separate():
    df = pd.DataFrame({"model": "m", "length": [0, 1, 2, 3, 4, 5, 6, 7, 8], "samples": 4,
                       "total_grad": [1, 5, 9, 8, 4, 2, 1, 0.5, 0.1]})
    df["total_grad_low"], df["total_grad_high"] = df["total_grad"] - 1.5, df["total_grad"] + 1.5
    s = paths_findings(df)["sentence"][0]
    assert "peaks at path length 2 of 8" in s and "lengths 2-3 cannot be told from it" in s
    assert "below half the depth (4)" in s
    df["total_grad"] = df["total_grad"][::-1].to_numpy()  # the peak at long paths
    df["total_grad_low"], df["total_grad_high"] = df["total_grad"] - 1.5, df["total_grad"] + 1.5
    assert "does not show" in paths_findings(df)["sentence"][0]


def test_conductance_findings_count_shares_outside_zero_to_one():
    df = pd.DataFrame({"model": "m", "branch_share": [-0.5, 0.2, 0.9, 1.4, None]})
    s = conductance_findings(df)["sentence"][0]
    assert "runs from -0.50 to 1.40; 2 of 4 blocks lie outside 0-1" in s and "opposite directions" in s


def test_landscape_findings_compare_plain_and_residual_at_one_depth():
    a = [-1.0, -0.5, 0.0, 0.5, 1.0]
    t = pd.concat([pd.DataFrame({"model": m, "residual": r, "beta": 0.0, "alpha": a, "loss": [c * x * x for x in a]})
                   for m, r, c in (("plain20", False, 4.0), ("resnet20", True, 1.0))])
    f = landscape_findings(t)
    assert "rises by 1.000 at |α| = 0.5" in f["sentence"][0]  # 4 x 0.25
    assert "curvature at the minimum 8.000" in f["sentence"][0]
    assert f["model"].iloc[-1] == "plain20 vs resnet20" and "shows here" in f["sentence"].iloc[-1]
    t.loc[t["model"] == "resnet20", "loss"] *= 10
    assert "does not show on this slice" in landscape_findings(t)["sentence"].iloc[-1]
