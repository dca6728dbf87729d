"""The papers' claims, measured on the shipped zoo (the 'must show' of the analysis engine)."""

import pandas as pd
import pytest
import torch

from analysis.core.common import eval_sample
from analysis.analyses.deletion import PrefixCache, delete_random, delete_single, path_gradients, summarize_random
from analysis.analyses.responses import compare_responses, responses, summarize_responses
from analysis.core.zoo import available, read_card, load_pretrained
from conftest import needs_data

pytestmark = [needs_data, pytest.mark.slow]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample():
    return eval_sample(300, 0, CPU)


@pytest.fixture(scope="module")
def response_tables(sample):
    res = [responses(load_pretrained(n, device=CPU), sample, n)
           for n in ("plain20", "plain56", "resnet20", "resnet56", "resnet110")]
    return pd.concat([r[0] for r in res], ignore_index=True), pd.concat([r[1] for r in res], ignore_index=True)


def test_residual_responses_are_smaller(response_tables):
    """Fig. 7: ResNets respond less than plain nets of the same depth, and deeper ResNets less still.

    The paper does not say how a layer's std is aggregated. With the std over all values of a layer the
    residual nets are smaller at 20 and 56 layers. With the per-channel std (then the mean over channels)
    only the 20-layer pair separates: the fully trained resnet56 sits slightly above plain56 there, which
    the README and the Responses page say; this test pins what holds, not what was hoped for.
    """
    cmp = compare_responses(*response_tables).set_index(["depth", "measure"])
    assert cmp.loc[(20, "std"), "residual_smaller"] and cmp.loc[(20, "std_all"), "residual_smaller"]
    assert cmp.loc[(56, "std_all"), "residual_smaller"], cmp.loc[56]
    assert cmp.loc[(56, "std_all"), "share_residual_below"] > 0.5
    summary = summarize_responses(*response_tables).set_index("model")
    for col in ("median_std", "median_std_all", "mean_ratio"):
        r20, r56, r110 = (summary.loc[n, col] for n in ("resnet20", "resnet56", "resnet110"))
        assert r20 > r56 > r110, (col, r20, r56, r110)
    assert (summary.loc[["resnet20", "resnet56", "resnet110"], "mean_ratio"] < 1).all()
    assert (summary.loc[["plain20", "plain56"], "mean_ratio"] > 1).all()  # a plain block rewrites its input


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
    p20, p56, r20, r56, r110 = (read_card(n).raw for n in ("plain20", "plain56", "resnet20", "resnet56", "resnet110"))
    assert p56["train_error_pct"] > p20["train_error_pct"]  # deeper plain net: higher *training* error
    assert p56["test_error_pct"] - r56["test_error_pct"] >= 1.5
    assert r20["test_error_pct"] <= 13.0 and r56["test_error_pct"] <= 11.0 and r110["test_error_pct"] <= 11.0
    assert r20["test_error_pct"] - r56["test_error_pct"] >= 1.0  # depth helps once there are shortcuts


def test_residual_nets_finished_their_schedules():
    """No residual net in the zoo was cut short (--stop-after-epoch): each ran to its last iteration."""
    for n in ("resnet20", "resnet56", "resnet110"):
        c = read_card(n).raw
        assert not c.get("stopped_early"), n
        assert c["history"][-1]["iteration"] == c["schedule"]["iterations"], n


def test_plain110_degrades_further():
    """Where shipped, plain110 trains worse than plain56: training error, not overfitting."""
    if "plain110" not in available():
        pytest.skip("plain110 is not shipped")
    p56, p110, r110 = read_card("plain56").raw, read_card("plain110").raw, read_card("resnet110").raw
    assert p110["train_error_pct"] > p56["train_error_pct"] and p110["train_error_pct"] > r110["train_error_pct"]


def test_every_card_claim_is_judged_on_the_real_zoo_table():
    """The claims read off the model cards (1, 14, 15) get a verdict on the zoo's own table, not "untested" for a
    column the table lacks (claim 14 once read schedule fields that the typed card no longer put in the table)."""
    from analysis.claims import CLAIMS, measure_from_report
    from analysis.claims.rules import UNTESTED

    names = ["plain20", "plain56", "resnet20", "resnet56"]
    m = measure_from_report(names, samples=8, seed=0, device="cpu", heavy=False)
    for c in CLAIMS:
        if c.id in (1, 14, 15):
            v = c.judge(m)
            assert v.verdict != UNTESTED, (c.id, v.summary)
    faster = next(c for c in CLAIMS if c.id == 14).judge(m)
    assert "20 layers: training error below 20 % first at epoch" in faster.summary, faster.summary
