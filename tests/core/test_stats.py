"""Intervals against known answers, and intervals that stay inside what is possible."""

import numpy as np
import pandas as pd
import pytest

from analysis.core import stats as S
from analysis.analyses.deletion import summarize_random


def test_wilson_known_answers_and_bounds():
    assert S.wilson(0, 10) == pytest.approx((0.0, 27.7533), abs=1e-3)  # z²/(n + z²) at 0 successes
    assert S.wilson(5, 10) == pytest.approx((23.6593, 76.3407), abs=1e-3)
    lo, hi = S.wilson(10, 10)
    assert hi == pytest.approx(100.0) and hi <= 100.0 and lo == pytest.approx(72.2467, abs=1e-3)


def test_newcombe_known_answer():
    # Newcombe (1998), Statistics in Medicine 17, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    lo, hi = S.newcombe_diff(100 * 56 / 70, 70, 100 * 48 / 80, 80)
    assert lo == pytest.approx(5.24, abs=0.01) and hi == pytest.approx(33.39, abs=0.01)


def test_median_interval_order_statistics():
    assert S.median_interval([5, 1, 3, 2, 4, 7, 6]) == (4.0, 1.0, 7.0)  # 7 values: min-max, 98.4 %
    x = list(range(1, 26))  # 25 values: the 8th and 18th (coverage 95.7 %; the 9th and 17th give 89 %)
    assert S.median_interval(x) == (13.0, 8.0, 18.0)


def test_welch_known_answer():
    d, lo, hi = S.welch_diff([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])  # equal variances: df = 4, t = 2.776
    assert d == 3.0 and hi - d == pytest.approx(2.776 * np.sqrt(2 / 3), rel=1e-4)
    assert S.welch_diff([10.0], [30.0]) == (20.0, 20.0, 20.0)


def test_compare_and_ratio():
    assert S.compare(1.0, 2.0, 0.5) == S.ABOVE and S.compare(1.0, 2.0, 3.0) == S.BELOW
    assert S.compare(1.0, 2.0, 1.5) == S.STRADDLES
    assert S.ratio_interval((2.0, 4.0), (1.0, 2.0)) == (1.0, 4.0)


def test_a_deletion_band_stays_inside_zero_to_a_hundred_percent():
    """Three trials at 0, 100 and 100 % error: a Student-t interval of their mean runs from -76 % to 210 %."""
    df = pd.DataFrame({"model": "m", "residual": True, "k": 3, "trial": range(3), "error_pct": [0.0, 100.0, 100.0]})
    r = summarize_random(df).iloc[0]
    assert 0.0 <= r["ci95_low"] < r["mean_error_pct"] < r["ci95_high"] <= 100.0
    from analysis.core.common import mean_ci95

    assert mean_ci95([0.0, 100.0, 100.0])[1] < 0  # what the page used to draw
