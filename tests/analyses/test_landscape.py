"""The 2-D loss landscape: grid points evaluated one at a time or several per pass agree, and the contour
lines of the page are where the iso-lines of known functions are."""

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.core.common import random_sample
from analysis.analyses.landscape import (contour_levels, contour_segments, filter_normalized_direction, grid, grid_losses,
                                landscape, landscape_contours)
from conftest import tiny


def test_grid_points_batched_with_vmap_equal_one_per_pass_and_the_landscape_rows():
    m = tiny(depth=14)
    b = random_sample(24, 0, torch.device("cpu"))
    d1, d2 = filter_normalized_direction(m, 0), filter_normalized_direction(m, 1)
    pts = [(-0.5, 0.25), (0.0, 0.0), (0.5, -1.0), (1.0, 1.0), (0.25, 0.75)]
    one = grid_losses(m, b, pts, d1, d2, bf16=False)
    many = grid_losses(m, b, pts, d1, d2, bf16=False, points_per_pass=3)
    assert np.allclose([l for l, _ in one], [l for l, _ in many], rtol=1e-4)
    assert [e for _, e in one] == [e for _, e in many]
    # the landscape() rows at the same points (its grid is alpha-major within each beta)
    df = landscape(m, b, "t", alphas=[-0.5, 0.5], betas=[0.25, -1.0], seed=0, bf16=False)
    want = {(a, bb): l for (a, bb), (l, _) in zip([(-0.5, 0.25), (0.5, -1.0)], grid_losses(m, b, [(-0.5, 0.25), (0.5, -1.0)], d1, d2, bf16=False))}
    for (a, bb), l in want.items():
        assert df[(df.alpha == a) & (df.beta == bb)]["loss"].item() == pytest.approx(l, rel=1e-6)
    # at the trained weights the loss is the model's own cross-entropy
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(m(b.x), b.y).item()
    assert one[1][0] == pytest.approx(ce, rel=1e-5)


def test_contours_of_a_linear_function_lie_exactly_on_its_level():
    a, b = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    z = 2 * a[None, :] + 0 * b[:, None] + 3  # z = 2a + 3: the level L is the vertical line a = (L - 3) / 2
    seg = contour_segments(a, b, z, [2.0, 3.5])
    for lev, g in seg.groupby("level"):
        assert np.allclose(g["alpha"], (lev - 3) / 2)
        assert g["beta"].min() == pytest.approx(-1) and g["beta"].max() == pytest.approx(1)
        assert g["segment"].nunique() == len(b) - 1  # one segment per row of cells


def test_contours_of_a_bowl_are_circles_and_saddles_are_split():
    g = np.linspace(-1, 1, 41)
    z = g[None, :] ** 2 + g[:, None] ** 2
    seg = contour_segments(g, g, z, [0.3, 0.7])  # levels that no grid value equals
    for lev, s in seg.groupby("level"):
        r = np.hypot(s["alpha"], s["beta"])
        assert np.allclose(r, np.sqrt(lev), atol=2e-3)  # linear interpolation of a quadratic: small error
        # a closed curve: every end point is shared by exactly two segments
        ends = s.round(9).groupby(["alpha", "beta"]).size()
        assert (ends == 2).all()
    # a saddle cell: both diagonal corners above the level, two segments, no crossing lines
    z = np.array([[1.0, 0.0], [0.0, 1.0]])
    s = contour_segments([0, 1], [0, 1], z, [0.5])
    assert s["segment"].nunique() == 2 and len(s) == 4
    assert contour_segments([0, 1], [0, 1], np.array([[np.nan, 0.0], [0.0, 1.0]]), [0.5]).empty
    with pytest.raises(ValueError, match="expected"):
        contour_segments([0, 1, 2], [0, 1], z, [0.5])


def test_every_model_is_drawn_on_the_same_levels():
    rows = []
    for name, scale in (("plain", 10.0), ("res", 1.0)):
        for bb in grid(5):
            for a in grid(5):
                rows.append({"model": name, "dims": 2, "alpha": a, "beta": bb, "loss": scale * (1 + a * a + bb * bb)})
    df = pd.DataFrame(rows)
    segs = landscape_contours(df, n_levels=6)
    levels = contour_levels(df["loss"].min(), df["loss"].max(), 6)
    assert len(levels) == 6 and levels[0] > 1.0 and levels[-1] < 30.0 and np.all(np.diff(np.log(levels)) > 0)
    assert set(segs["level"]) <= set(levels)
    assert set(segs[segs.model == "res"]["level"]) != set(segs[segs.model == "plain"]["level"])
