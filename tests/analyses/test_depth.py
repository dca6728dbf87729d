"""Depth, constructed and read out: known answers for the construction, the readouts, CKA, input recovery and
iterative refinement."""

import pytest
import numpy as np
import pandas as pd
import torch

from analysis.analyses.cka import centred_gram, cka_matrix, gram, hsic_biased, hsic_matrices, hsic_unbiased, linear_cka
from analysis.analyses._prefix import PrefixCache, full_error_pct
from analysis.analyses.readout import probe_error
from analysis.analyses.recovery import recovery_r2
from analysis.analyses.refinement import refinement
from analysis.core.common import random_sample
from analysis.core.construct import ConstructionRefused, construct_deeper
from analysis.engine.context import Context
from analysis.engine.registry import get, run_one
from conftest import make_imagefolder, tiny

X = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
UNITS = ["plain14", "resnet14", "resnet14-preact", "resnet14-bnafter", "resnet14-relubefore", "resnet14-relupreact",
         "resnet14b", "resnet14-conv1x1", "resnet14-preact-conv1x1"]


# ---------------------------------------------------------------------------- the construction
@pytest.mark.parametrize("name", UNITS)
def test_a_constructed_net_computes_its_sources_logits(name):
    small = tiny(name=name, width=16)
    deep, new = construct_deeper(small, 32)
    assert deep.depth == 32 and len(new) == 9 and all(not b.split(".")[1].endswith(("0", "1")) for b in new)
    with torch.no_grad():
        torch.testing.assert_close(deep(X), small(X), rtol=0, atol=1e-5)  # within float rounding (here: equal)
    # the trained blocks are the source's, untouched
    s, d = small.state_dict(), deep.state_dict()
    assert all(torch.equal(s[k], d[k]) for k in s)


def test_the_construction_is_refused_where_it_is_not_defined():
    with pytest.raises(ConstructionRefused, match="shortcut scale"):
        construct_deeper(tiny(name="resnet14-scale0.5", width=16), 32)
    with pytest.raises(ConstructionRefused, match="6n\\+2 of at least 14"):
        construct_deeper(tiny(name="resnet14", width=16), 8)


# ---------------------------------------------------------------------------- CKA
def test_cka_known_answers():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 30, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)  # orthogonal transform
    assert linear_cka(x, 5.0 * x) == pytest.approx(1.0, abs=1e-12)  # isotropic scaling
    assert linear_cka(x, x, unbiased=False) == pytest.approx(1.0, abs=1e-12)
    # independent features, high dimension against n: the biased estimate is far from 0, the unbiased one near it
    a = torch.randn(40, 2000, generator=g, dtype=torch.float64)
    b = torch.randn(40, 2000, generator=g, dtype=torch.float64)
    biased, unbiased = linear_cka(a, b, unbiased=False), linear_cka(a, b)
    assert biased > 0.5 and abs(unbiased) < 0.05, (biased, unbiased)
    # the unbiased HSIC has expectation 0 for independent kernels (a mean over draws), the biased one does not
    k, l = gram(a), gram(b)
    assert float(hsic_biased(k, l)) > 10 * abs(float(hsic_unbiased(k, l)))


def test_every_pairs_hsic_at_once_equals_the_pairwise_definitions():
    """hsic_matrices (one product of the flattened kernels) against hsic_unbiased / hsic_biased pair by pair, on
    kernels of features with different scales and a shared part (so the values are far from 0 and from each other)."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(12, 40, generator=g, dtype=torch.float64)
    feats = [base * (j + 1) + torch.randn(12, 40, generator=g, dtype=torch.float64) * j for j in range(5)]
    grams = [gram(f) for f in feats]
    unb, bia = hsic_matrices(grams)
    for a in range(5):
        for b in range(5):
            for got, fn in ((unb[a, b], hsic_unbiased), (bia[a, b], hsic_biased)):
                want = fn(grams[a], grams[b])
                assert abs(float(got - want)) <= 1e-10 * abs(float(want)), (a, b, fn.__name__, float(got), float(want))
    assert torch.equal(unb, unb.T) or torch.allclose(unb, unb.T, rtol=1e-12)


def test_both_hsic_estimators_ignore_a_shift_of_the_features_so_the_centred_float32_kernel_gives_the_same_cka():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(30, 200, generator=g, dtype=torch.float64) * 3 + 5  # all positive, far from 0, as after a ReLU
    y = x[:, :80] ** 2 + torch.rand(30, 80, generator=g, dtype=torch.float64)
    for fn in (hsic_unbiased, hsic_biased):
        want = float(fn(gram(x), gram(y)))
        shifted = float(fn(gram(x - 7.0), gram(y + torch.arange(80.0, dtype=torch.float64))))
        assert shifted == pytest.approx(want, rel=1e-9), fn.__name__
    # a net's activations: the centred kernel in float32 against the float64 kernel of the features as they are
    m = tiny(name="resnet14", width=8)
    _, unb, bia = cka_matrix(m, X, batch=8)
    _, unb64, bia64 = cka_matrix(m, X, batch=8, kernel=lambda h: gram(h.float()))
    torch.testing.assert_close(unb, unb64, rtol=0, atol=1e-6)
    torch.testing.assert_close(bia, bia64, rtol=0, atol=1e-6)
    assert float((unb - unb.diag().diag()).abs().max()) > 0.05  # the off-diagonal values are not all 0
    h = torch.rand(6, 4, 3, 3, generator=g) + 100.0
    assert torch.allclose(centred_gram(h).sum(0), torch.zeros(6, dtype=torch.float64), atol=1e-3)  # rows sum to 0


def test_minibatch_cka_of_a_net():
    m = tiny(name="resnet14", width=8)
    names, unb, bia = cka_matrix(m, X, batch=8)  # two minibatches of 8
    assert names[0] == "stem" and len(names) == m.num_blocks + 1
    torch.testing.assert_close(torch.diagonal(unb), torch.ones(len(names), dtype=torch.float64))
    assert torch.allclose(unb, unb.T) and bool((bia <= 1 + 1e-9).all())


# ---------------------------------------------------------------------------- readouts
def test_a_probe_on_one_hot_features_scores_zero_error():
    y = torch.arange(200) % 10
    assert probe_error(torch.eye(10)[y], y, torch.eye(10)[y], y) == 0.0
    noise = torch.randn(200, 10, generator=torch.Generator().manual_seed(0))
    assert probe_error(noise[:100], y[:100], noise[100:], y[100:]) > 50.0  # nothing to read: near chance


def test_the_readout_with_every_block_deleted_is_the_stem_and_the_head():
    m = tiny(name="resnet14", width=8)
    b = random_sample(32, 0, torch.device("cpu"))
    a = get("readout")
    out = run_one(a, Context(name="t", model=m, arch="resnet14", seed=0, samples=32, batch=b,
                             params=a.params(train_images=32)))["readout"]
    head = out[out["readout"] == "head"].set_index("point_index")["error_pct"]
    every = list(range(m.num_blocks))
    assert head.loc[-1] == full_error_pct(m, b, skip=every)  # the stem's output through the skip path, then the head
    assert head.loc[m.num_blocks - 1] == PrefixCache(m, b).intact_error_pct()  # after the last block: the net itself
    assert out["error_pct"].between(0, 100).all() and (out["error_low"] <= out["error_pct"]).all()


def test_the_models_of_one_workspace_read_the_training_images_once(tmp_path, monkeypatch):
    """The depth analyses' training images are drawn once per workspace and shared by every model's features (the
    training split listed and read once, not once per model); each model's features are those of a fresh draw."""
    from analysis.analyses import _features
    from analysis.core import data as D
    from analysis.engine.context import Workspace

    monkeypatch.setenv("RESLENS_CACHE", str(tmp_path / "cache"))
    make_imagefolder(tmp_path / "c10", per_class=3)
    reads = []
    load = D.load_split
    monkeypatch.setattr(D, "load_split", lambda split, *a, **k: reads.append(split) or load(split, *a, **k))
    shared = Workspace()
    got = {}
    for name in ("plain14", "resnet14"):
        ctx = Context(name=name, model=tiny(name=name), arch=name, seed=3, samples=10, data=str(tmp_path / "c10"),
                      shared=shared)
        got[name] = _features.train_features(ctx, 12)
    assert reads == ["train"]
    split = load("train", tmp_path / "c10")
    idx = D.sample_indices(len(split), 12, 3 + 11)
    for name, feats in got.items():
        want = _features.extract(_features.inference_copy(tiny(name=name)), D.normalize(split.images[idx]),
                                 split.labels[idx])
        assert torch.equal(feats.labels, want.labels) and torch.equal(feats.pixels, want.pixels)
        assert all(torch.equal(a, b) for a, b in zip(feats.points, want.points)), name


def test_readouts_recovery_and_cka_share_one_pass_over_the_test_images_with_the_same_numbers(monkeypatch):
    """On a sample whose features are kept, the three analyses of one model run the net over the test images once
    (300 images: chunks of 250 and 50, after the 40 training images' features); with nothing kept, readout and
    recovery run their own passes and CKA its own minibatches. Their tables are equal either way."""
    from analysis.analyses import _features
    from analysis.core.models import CifarResNet
    from analysis.engine.context import Workspace

    b = random_sample(300, 1, torch.device("cpu"))
    calls = []
    block_inputs = CifarResNet.block_inputs
    monkeypatch.setattr(CifarResNet, "block_inputs", lambda self, x, *a, **k: calls.append(len(x))
                        or block_inputs(self, x, *a, **k))

    def tables(keep: bool) -> dict:
        monkeypatch.setattr(_features, "KEEP_TEST_BYTES", 64 * 2 ** 20 if keep else 0)
        calls.clear()
        shared, out = Workspace(), {}
        for name in ("readout", "recovery", "cka"):
            a = get(name)
            params = a.params(train_images=40) if "train_images" in a.defaults else a.params()
            ctx = Context(name="t", model=tiny(name="resnet14", width=8), arch="resnet14", seed=0, samples=300,
                          batch=b, params=params, shared=shared)
            out.update(run_one(a, ctx))
        return out

    kept = tables(True)
    assert calls == [40, 250, 50]  # the training features, then one pass over the test images for all three
    alone = tables(False)
    assert calls == [40, 250, 50, 250, 50, 250, 50]  # readout's, recovery's and CKA's own passes
    for key in ("readout", "input_recovery", "cka"):
        pd.testing.assert_frame_equal(kept[key], alone[key])
    assert kept["cka"]["cka"].between(-1.01, 1.01).all() and kept["cka"]["cka"].std() > 0.01


# ---------------------------------------------------------------------------- input recovery, refinement
def test_input_recovery_known_answers():
    g = torch.Generator().manual_seed(2)
    px = torch.randn(300, 48, generator=g)
    r2, lo, hi = recovery_r2(px[:200], px[:200], px[200:], px[200:])
    assert r2 > 0.99 and lo <= r2 <= hi
    noise = torch.randn(300, 16, generator=g)
    r2, lo, hi = recovery_r2(noise[:200], px[:200], noise[200:], px[200:])
    assert r2 < 0.05  # features that know nothing of the image restore nothing of it


def test_every_points_r2_interval_at_once_equals_resampling_each_point():
    """The points share the seed's resamples, so one product of the resample counts gives every point's bootstrap:
    the same intervals as summing each resample of each point on its own."""
    from analysis.analyses.recovery import r2_intervals
    from analysis.core.stats import resample_indices

    rng = np.random.default_rng(4)
    sst = rng.gamma(2.0, size=120) + 0.1
    sse = [sst * rng.uniform(0.1, 0.9, size=120) for _ in range(5)]  # five points, R² between 0.1 and 0.9
    got = r2_intervals(sse, sst, seed=7, resamples=500)
    idx = resample_indices(120, 500, 7)
    for e, (r2, lo, hi) in zip(sse, got):
        boot = 1 - e[idx].sum(1) / sst[idx].sum(1)
        assert r2 == pytest.approx(1 - e.sum() / sst.sum(), rel=1e-12)
        assert (lo, hi) == pytest.approx((np.quantile(boot, 0.025), np.quantile(boot, 0.975)), rel=1e-12)
        assert lo < r2 < hi


def test_input_recovery_solves_on_the_smaller_side_with_the_same_errors():
    """Fewer test images than pixels: the prediction comes from a Cholesky solve per test image, (z_t·A⁻¹)·(zᵀP),
    instead of the map W = A⁻¹·zᵀP (one solve per pixel); the squared errors agree to float rounding."""
    from analysis.analyses.recovery import PixelMap

    g = torch.Generator().manual_seed(3)
    feats = torch.randn(400, 40, generator=g)
    px = feats[:, :30] @ torch.randn(30, 96, generator=g) + 0.5 * torch.randn(400, 96, generator=g)
    by_pixel = PixelMap(feats[:300], px[:300])  # no test count given: the map W
    by_image = PixelMap(feats[:300], px[:300], test_images=50)  # 50 < 96 pixels: the test images' side
    assert by_pixel.chol is None and by_image.chol is not None
    (e1, t1), (e2, t2) = by_pixel.score(feats[300:350], px[300:350]), by_image.score(feats[300:350], px[300:350])
    np.testing.assert_allclose(e2, e1, rtol=1e-4)
    np.testing.assert_array_equal(t2, t1)
    assert 0.5 < 1 - e1.sum() / t1.sum() < 1  # a real fit, not a trivial one
    # the test chunks are scored inside the stream's bfloat16 autocast: the map still runs in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for pm in (by_pixel, by_image):
            e3, _ = pm.score(feats[300:350], px[300:350])
            np.testing.assert_allclose(e3, e1, rtol=1e-4)


def test_refinement_measures_the_branch_in_residual_nets_and_the_block_change_in_plain_nets():
    import warnings

    b = random_sample(8, 0, torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain block's change once kept a graph (PyTorch warned on reading it)
        r = refinement(tiny(name="resnet14", width=8), b, "r")
        p = refinement(tiny(name="plain14", width=8), b, "p")
    assert set(r["change"]) == {"branch output F(h)"} and set(p["change"]) == {"block change y − s(h)"}
    assert r["cosine"].between(-1, 1).all() and p["cosine"].between(-1, 1).all()


@pytest.mark.parametrize("name", ["resnet14", "plain14", "resnet14-bnafter", "resnet29-bottleneck"])
def test_refinement_in_one_backward_pass_equals_its_definition_block_by_block(name):
    """Against the definition: per block, the block's output fed to the rest of the net as a leaf, its gradient read."""
    import torch.nn.functional as F

    m = tiny(name=name, width=8)
    b = random_sample(6, 0, torch.device("cpu"))
    got = refinement(m, b, "t")["cosine"].to_numpy()
    with torch.no_grad():
        inputs, _ = m.block_inputs(b.x)
    for info, blk in m.blocks():
        h = inputs[info.index]
        with torch.no_grad():
            out = blk(h)
            change = blk.branch(h) if m.residual else out - blk.skip_path(h)
        out.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(m.forward_from(info.index + 1, out), b.y, reduction="sum"), out)
        want = F.cosine_similarity(change.flatten(1).double(), -g.flatten(1).double(), dim=1).mean().item()
        assert got[info.index] == pytest.approx(want, rel=1e-4, abs=1e-6)


@pytest.mark.skipif(not __import__("conftest").HAVE_DATA, reason="CIFAR-10 not found")
def test_construct_writes_a_model_whose_errors_equal_its_sources(tmp_path, capsys):
    import json

    from analysis.cli import main
    from analysis.core.zoo import load_pretrained

    assert main(["construct", "resnet20", "--depth", "32", "--name", "r32", "--samples", "300", "--train-samples",
                 "300", "--out", str(tmp_path)]) == 0
    card = json.loads((tmp_path / "r32.json").read_text())
    c = card["constructed"]
    assert card["arch"] == "resnet32" and c["from"] == "resnet20" and len(c["new_blocks"]) == 6
    assert card["test_error_pct"] == c["source_test_error_pct"] and card["train_error_pct"] == c["source_train_error_pct"]
    assert "python -m analysis construct resnet20 --depth 32 --name r32" in card["command"]
    deep, src = load_pretrained("r32", device="cpu", root=tmp_path), load_pretrained("resnet20", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(deep(X), src(X), rtol=0, atol=1e-5)
    assert "identity blocks" in capsys.readouterr().out


def test_the_shipped_constructions_record_their_sources_errors():
    from analysis.core.zoo import read_card

    for name, source in (("plain56-from-plain20", "plain20"), ("resnet56-from-resnet20", "resnet20")):
        card = read_card(name)
        assert card.arch.name == source.replace("20", "56") and card.constructed["from"] == source
        assert card.test_error_pct == card.constructed["source_test_error_pct"]
        assert card.train_error_pct == card.constructed["source_train_error_pct"]
        assert card.test_images == 10_000 and card.train_images == 50_000
