"""The papers' claims, measured on the shipped zoo (the 'must show' of the analysis engine)."""

import pytest
import torch

from analysis.common import eval_sample
from analysis.deletion import PrefixCache, delete_random, delete_single, path_gradients, summarize_random
from analysis.responses import responses
from analysis.zoo import load_card, load_pretrained
from conftest import needs_data

pytestmark = needs_data
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample():
    return eval_sample(300, 0, CPU)


@pytest.mark.parametrize("depth", [20, 56])
def test_residual_responses_are_smaller(sample, depth):
    med = {}
    for kind in ("plain", "resnet"):
        r, _ = responses(load_pretrained(f"{kind}{depth}", device=CPU), sample, kind)
        med[kind] = r["std"].median()
    assert med["resnet"] < med["plain"], med


def test_single_deletions_resnet110_vs_plain56(sample):
    r110 = delete_single(load_pretrained("resnet110", device=CPU), sample, "resnet110")
    body = r110[~r110["downsample"]]
    assert body["delta_error_pct"].median() < 1.0, body["delta_error_pct"].describe()
    p56 = delete_single(load_pretrained("plain56", device=CPU), sample, "plain56")
    assert p56["error_pct"].median() >= 80.0, p56["error_pct"].describe()


def test_mean_error_rises_with_k(sample):
    m = load_pretrained("resnet110", device=CPU)
    df = delete_random(m, sample, "resnet110", [0, 5, 10, 15, 20], trials=4, seed=0, cache=PrefixCache(m, sample))
    means = summarize_random(df)["mean_error_pct"].tolist()
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_total_gradient_peaks_at_short_paths(sample):
    m = load_pretrained("resnet110", device=CPU)
    df = path_gradients(m, sample, "resnet110", samples_per_length=3, batch_size=16, seed=0)
    peak = int(df.loc[df["total_grad"].idxmax(), "length"])
    assert peak < m.num_blocks / 2, peak
    assert df["fraction"].sum() == pytest.approx(1.0)


def test_degradation_in_the_cards():
    p20, p56, r20, r56, r110 = (load_card(n) for n in ("plain20", "plain56", "resnet20", "resnet56", "resnet110"))
    assert p56["train_error_pct"] > p20["train_error_pct"]  # deeper plain net: higher *training* error
    assert p56["test_error_pct"] - r56["test_error_pct"] >= 1.5
    assert r20["test_error_pct"] <= 13.0 and r110["test_error_pct"] <= 11.0


@pytest.mark.xfail(strict=True, reason="the shipped resnet56 ran a shortened 80-epoch schedule (its 143-epoch GPU run "
                   "was lost); retrain it with the full recipe on a GPU: python -m analysis train resnet56")
def test_resnet56_reaches_its_target():
    r20, r56 = load_card("resnet20"), load_card("resnet56")
    assert r56["test_error_pct"] <= 11.0 and r20["test_error_pct"] - r56["test_error_pct"] >= 1.0
