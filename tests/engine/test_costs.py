"""The time estimate before a run: the declared law, scaled to images, work and this device, corrected by runs."""

import pytest

from analysis.engine import costs
from analysis.engine.context import DEFAULT_SAMPLES
from analysis.engine.registry import get


@pytest.fixture
def fixed(monkeypatch):
    """A cost table and a forward time chosen here, so that the estimate has a known answer."""
    monkeypatch.setattr(costs, "_table", lambda: {"forward_s_per_image_block": 1e-4,
                                                  "analyses": {"deletion_random": {"c": 0.5, "e": 2.0},
                                                               "landscape": {"c": 2.0, "e": 1.0}}})
    monkeypatch.setitem(costs._forward, "cpu", 2e-4)  # this device: twice as slow as where the table was measured
    monkeypatch.setattr(costs, "_correction", {})


def test_the_estimate_follows_the_law_images_work_and_device(fixed):
    a = get("deletion_random")
    base = costs.estimate(a, 9, DEFAULT_SAMPLES, dict(a.defaults), "cpu")
    assert base == pytest.approx(0.5 * 9 ** 2 * 2)
    assert costs.estimate(a, 27, DEFAULT_SAMPLES, dict(a.defaults), "cpu") == pytest.approx(base * 9)
    assert costs.estimate(a, 9, DEFAULT_SAMPLES // 5, dict(a.defaults), "cpu") == pytest.approx(base / 5)
    more = {**a.defaults, "trials": 2 * a.defaults["trials"]}
    assert costs.estimate(a, 9, DEFAULT_SAMPLES, more, "cpu") == pytest.approx(
        base * a.work(more) / a.work(a.defaults))
    ls = get("landscape")
    only_1d = {**ls.defaults, "dims": (1,)}
    assert costs.estimate(ls, 9, DEFAULT_SAMPLES, only_1d, "cpu") == pytest.approx(
        2.0 * 9 * 2 * ls.work(only_1d) / ls.work(ls.defaults))
    assert costs.estimate(get("responses"), 9, DEFAULT_SAMPLES, {}, "cpu") is None  # nothing measured for it


def test_observed_runs_pull_the_estimate_halfway_in_log_terms(fixed):
    a = get("deletion_random")
    est = costs.estimate(a, 9, DEFAULT_SAMPLES, dict(a.defaults), "cpu")
    costs.observe(a, 9, DEFAULT_SAMPLES, dict(a.defaults), "cpu", est * 4)
    assert costs.estimate(a, 9, DEFAULT_SAMPLES, dict(a.defaults), "cpu") == pytest.approx(est * 2)


def test_words_round_as_a_reader_would():
    assert [costs.words(s) for s in (3.2, 17.6, 41, 88, 200)] == ["about 3 s", "about 18 s", "about 40 s",
                                                                   "about 90 s", "about 3 min"]


def test_the_shipped_table_covers_the_analyses_that_declare_their_work():
    table = costs._table()
    assert table["forward_s_per_image_block"] > 0
    for name in ("gradients", "deletion_random", "landscape", "hessian", "attributions"):
        law = table["analyses"][name]
        assert law["c"] > 0 and 0.3 < law["e"] < 3.5, (name, law)
