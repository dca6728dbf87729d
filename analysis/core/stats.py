"""Intervals that can exist, and verdicts that compare intervals rather than point values.

* :func:`wilson` gives the Wilson score interval of an error rate from its counts: it always lies in
  0-100 % (a Student-t interval around a mean of error rates can leave it).
* :func:`bootstrap_mean` gives the percentile bootstrap interval of a mean (or median) over draws, e.g. over the
  random trials of a block deletion: it lies between the smallest and largest draw, so an interval of error rates
  stays inside 0-100 %.
* :func:`newcombe_diff` gives the interval of the difference of two error rates measured on separate counts
  (Newcombe's hybrid score method, from the two Wilson intervals).
* :func:`median_interval` gives the distribution-free interval of a median from order statistics (7 values:
  the smallest and the largest, 98.4 %); :func:`welch_diff` the Student-t interval of a difference of two means.
* :func:`compare` turns an interval and a threshold into a verdict: above it, below it, or straddling it
  ("depends": more images or trials would settle it).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile
# Two-sided 95 % Student t quantiles for df = 1..30; beyond that the normal 1.96 is within 2 %.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t975(df: float) -> float:
    """The two-sided 95 % Student t quantile (df rounded down; the normal quantile beyond 30)."""
    if not df >= 1:
        return float("nan")
    d = int(df)
    return _T975[d - 1] if d <= len(_T975) else Z95

ABOVE, BELOW, STRADDLES = "above", "below", "straddles"


def wilson(wrong: float, total: float, z: float = Z95) -> tuple[float, float]:
    """(low, high) in percent: the Wilson score interval of ``wrong`` errors out of ``total`` images."""
    if total <= 0:
        return 0.0, 100.0
    p = min(max(wrong / total, 0.0), 1.0)
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def wilson_pct(error_pct: float, images: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval of an error rate given in percent over ``images`` images."""
    return wilson(round(error_pct * images / 100.0), images, z)


def newcombe_diff(err1_pct: float, n1: float, err2_pct: float, n2: float, z: float = Z95) -> tuple[float, float]:
    """(low, high), in percentage points, of error 1 minus error 2 (Newcombe 1998, method 10). The two errors
    are treated as independent; on the same images they are positively correlated, so the interval is wide
    rather than narrow (it errs towards "depends")."""
    p1, p2 = err1_pct / 100.0, err2_pct / 100.0
    l1, u1 = (v / 100.0 for v in wilson_pct(err1_pct, n1, z))
    l2, u2 = (v / 100.0 for v in wilson_pct(err2_pct, n2, z))
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return 100.0 * low, 100.0 * high


def resample_indices(n: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """The percentile bootstrap's resamples of n items (``resamples`` x n indices drawn with replacement, seeded): one
    source for every bootstrap here, so that the same seed resamples the same way wherever it is used."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def resample_counts(n: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """How often each item is drawn in each of :func:`resample_indices`' resamples (``resamples`` x n, float64): a sum
    over a resample of any per-item column is then one matrix product (``counts @ values``), for many columns at once.

    Example:
        >>> v = np.arange(5.0)
        >>> bool(np.allclose(resample_counts(5, 3) @ v, v[resample_indices(5, 3)].sum(1)))
        True
    """
    idx = resample_indices(n, resamples, seed)
    flat = (idx + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def bootstrap(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean, resamples: int = 2000,
              level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(statistic, low, high): the percentile bootstrap interval of ``stat`` over ``values`` (seeded, so the same
    values always give the same interval). One value gives a zero-width interval: nothing says how it varies."""
    v = np.asarray(list(values), dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    s = float(stat(v))
    if len(v) == 1 or np.all(v == v[0]):
        return s, s, s
    idx = resample_indices(len(v), resamples, seed)
    boot = np.apply_along_axis(stat, 1, v[idx]) if stat not in (np.mean, np.median) else (
        v[idx].mean(1) if stat is np.mean else np.median(v[idx], axis=1))
    a = (1 - level) / 2
    return s, float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))


def bootstrap_mean(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    return bootstrap(values, np.mean, seed=seed)


def bootstrap_median(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    return bootstrap(values, np.median, seed=seed)


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the order-statistic interval of a median, which needs no assumption about the values'
    distribution: [x_(j), x_(n+1-j)] with the largest j whose coverage 1 - 2 P(Binomial(n, 1/2) < j) is at least
    ``level`` (the smallest and largest value when even they do not reach it, as with 5 values or fewer)."""
    x = np.sort(np.asarray(list(values), dtype=np.float64))
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    med = float(np.median(x))
    j, cdf = 1, 0.0
    for cand in range(1, n // 2 + 1):
        cdf = sum(math.comb(n, i) for i in range(cand)) / 2 ** n  # P(B < cand)
        if 1 - 2 * cdf >= level:
            j = cand
        else:
            break
    return med, float(x[j - 1]), float(x[n - j])


def welch_diff(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(mean(b) - mean(a), low, high): the 95 % Welch interval of a difference of two means. A group of one value
    adds no spread (it is taken as exact); two groups of one give a zero-width interval (nothing says how it varies)."""
    a, b = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    d = float(b.mean() - a.mean())
    va = a.var(ddof=1) / len(a) if len(a) > 1 else 0.0
    vb = b.var(ddof=1) / len(b) if len(b) > 1 else 0.0
    se2 = va + vb
    if se2 <= 0:
        return d, d, d
    df = se2 ** 2 / sum(v ** 2 / (len(x) - 1) for v, x in ((va, a), (vb, b)) if len(x) > 1 and v > 0)
    half = t975(df) * math.sqrt(se2)
    return d, d - half, d + half


def mean_interval(mean: float, std: float, n: int, z: float = Z95) -> tuple[float, float]:
    """A normal-approximation interval of a mean from its standard deviation over ``n`` values."""
    if n <= 1 or not math.isfinite(std):
        return mean, mean
    half = z * std / math.sqrt(n)
    return mean - half, mean + half


def ratio_interval(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The interval of a / b from an interval of a and a positive interval of b (the extreme quotients)."""
    if b[0] <= 0:
        return 0.0 if a[0] >= 0 else -math.inf, math.inf
    qs = [a[0] / b[0], a[0] / b[1], a[1] / b[0], a[1] / b[1]]
    return min(qs), max(qs)


def compare(low: float, high: float, threshold: float) -> str:
    """Where an interval lies against a threshold: ``ABOVE`` (entirely above), ``BELOW`` (entirely below) or
    ``STRADDLES`` (the threshold is inside it: the evidence cannot tell)."""
    if low > threshold:
        return ABOVE
    if high < threshold:
        return BELOW
    return STRADDLES


def fmt_interval(low: float, high: float, digits: int = 1, unit: str = "") -> str:
    return f"{low:.{digits}f}-{high:.{digits}f}{unit}"
