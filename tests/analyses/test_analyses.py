"""The analysis engine on tiny nets, against answers computed independently."""

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from analysis.analyses.attributions import attribute_image
from analysis.core.common import autocast, chunked, mean_ci95, random_sample
from analysis.analyses._prefix import PrefixCache, full_error_pct
from analysis.analyses.deletion import (delete_random, delete_single, kendall_tau, path_distribution, path_gradients,
                                        reorder, summarize_random)
from analysis.analyses.gradients import gradient_flow, lambda_sweep
from analysis.analyses.landscape import filter_normalized_direction, landscape
from analysis.analyses.responses import compare_responses, responses, summarize_responses
from conftest import tiny


def batch(n=24, seed=0):
    return random_sample(n, seed, torch.device("cpu"))


def dead_branch_net():
    """A tiny residual net whose block 2 adds nothing: its last BN's scale and shift are 0."""
    m = tiny(True, 14)
    with torch.no_grad():
        m.block(2).bn2.weight.zero_()
        m.block(2).bn2.bias.zero_()
    return m


def test_zero_bn_block_has_ratio_zero_and_deleting_it_changes_nothing():
    m = dead_branch_net()
    b = batch()
    _, ratio = responses(m, b, "t")
    assert ratio.loc[2, "ratio"] == 0.0 and (ratio["ratio"].drop(index=2) > 0).all()
    for cache in (PrefixCache(m, b, bf16=False), PrefixCache(m, b)):  # float32, and the folded, fused bfloat16 copy
        single = delete_single(m, b, "t", cache=cache)
        assert single.loc[2, "error_pct"] == single.loc[2, "intact_error_pct"]


def test_the_ratio_only_mode_gives_the_ratios_alone_and_a_dead_branch_zero():
    m = dead_branch_net()
    b = batch()
    resp, ratio = responses(m, b, "t", ratio_only=True)
    assert resp is None and ratio.loc[2, "ratio"] == 0.0 and (ratio["ratio"].drop(index=2) > 0).all()
    assert set(ratio["precision"]) == {"bfloat16 autocast"}
    _, exact = responses(m, b, "t")
    assert set(exact["precision"]) == {"float32"}
    assert ((ratio["ratio"] - exact["ratio"]).abs() < 0.02 * exact["ratio"] + 1e-6).all()  # a random tiny net


@pytest.mark.skipif(not __import__("conftest").HAVE_DATA, reason="CIFAR-10 not found; set RESLENS_DATA")
@pytest.mark.parametrize("name", ["plain20", "resnet20", "resnet56-preact", "resnet56-relubefore"])
def test_residual_ratios_in_bfloat16_stay_within_the_stated_bound_of_float32(name):
    """The ratio-only mode (the Identity mappings page) against the float32 pass on 200 test images: every block
    within RATIO_BF16_ABS, the bound the captions state (0.0008 at most on the zoo at 500 images); the
    relu-before-add net has a branch near 0, where only the absolute bound means anything."""
    from analysis.analyses.responses import RATIO_BF16_ABS
    from analysis.core.common import eval_sample
    from analysis.core.zoo import load_pretrained

    m = load_pretrained(name, "cpu")
    b = eval_sample(200, 1, torch.device("cpu"))
    _, fast = responses(m, b, name, ratio_only=True)
    _, exact = responses(m, b, name)
    for col in ("ratio", "ratio_shortcut"):
        diff = (fast[col] - exact[col]).abs()
        assert diff.max() <= RATIO_BF16_ABS, (col, diff.max())
        big = exact[col] > 0.01
        assert (diff[big] / exact[col][big]).max() < 0.01


def test_response_std_matches_a_direct_computation():
    m = tiny(True, 8)
    b = batch(16)
    resp, _ = responses(m, b, "t", chunk=5)  # chunking must not change the statistic
    with torch.no_grad():
        h = m.stem.relu(m.stem.bn(m.stem.conv(b.x)))
        a1 = m.block(0).bn1(m.block(0).conv1(h))
    direct = a1.double().permute(1, 0, 2, 3).flatten(1).std(dim=1, unbiased=False).mean().item()
    got = resp.set_index("layer").loc["stage1.block0.bn1"]
    assert abs(got["std"] - direct) < 1e-6 * max(1, direct)
    direct_all = a1.double().std(unbiased=False).item()
    assert abs(got["std_all"] - direct_all) < 1e-6 * max(1, direct_all)


def test_channel_stats_merge_chunks_exactly_even_far_from_zero():
    """The per-chunk float32 var_mean merged in float64 (Chan's update) against float64 on all values at once:
    channels with means of 1e3 and spreads of 1e-2 (where summing squares in float32 would lose every digit),
    chunks of unequal sizes."""
    from analysis.analyses.responses import _ChannelStats

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(37, 3, 4, 5, generator=g, dtype=torch.float64) * torch.tensor([1e-2, 1.0, 5.0])[:, None, None]
         + torch.tensor([1e3, -2.0, 0.0])[:, None, None])
    st = _ChannelStats()
    for part in torch.split(x.float(), [1, 10, 7, 19]):
        st.add(part)
    std, std_all = st.std()
    want = x.float().double().permute(1, 0, 2, 3).flatten(1).std(dim=1, unbiased=False)
    assert std == pytest.approx(want.mean().item(), rel=1e-5)
    assert std_all == pytest.approx(x.float().double().std(unbiased=False).item(), rel=1e-6)
    assert st.n == 37 * 4 * 5


def test_compare_responses_known_answer():
    def resp(model, residual, stds, alls):
        return pd.DataFrame({"model": model, "residual": residual, "layer": [f"l{i}" for i in range(len(stds))],
                             "std": stds, "std_all": alls})

    r = pd.concat([resp("p", False, [3.0, 2.0, 1.0], [1.0, 1.0, 1.0]), resp("r", True, [0.5, 4.0, 1.0], [2.0, 0.5, 0.5]),
                   resp("other", True, [1.0, 1.0, 1.0, 1.0, 1.0], [1.0] * 5)], ignore_index=True)
    q = pd.DataFrame({"model": ["p", "p", "r", "r"], "ratio": [1.0, 2.0, 0.25, 0.75]})
    cmp = compare_responses(r, q).set_index("measure")
    assert list(cmp["depth"]) == [4, 4, 4] and set(cmp["residual"]) == {"r"}  # "other" has 5 layers: no pair
    # std: plain sorted 3,2,1 / residual sorted 4,1,0.5 -> medians 2 vs 1; residual below at ranks 2 and 3
    assert cmp.loc["std", "plain_value"] == 2.0 and cmp.loc["std", "residual_value"] == 1.0
    assert cmp.loc["std", "share_residual_below"] == pytest.approx(2 / 3)
    # std_all: 1,1,1 vs 2,0.5,0.5 -> medians 1 vs 0.5
    assert cmp.loc["std_all", "residual_smaller"] and cmp.loc["std_all", "residual_value"] == 0.5
    # ratio: means 1.5 vs 0.5, residual below at both ranks
    assert cmp.loc["ratio", "plain_value"] == 1.5 and cmp.loc["ratio", "residual_value"] == 0.5
    assert cmp.loc["ratio", "share_residual_below"] == 1.0
    s = summarize_responses(r, q).set_index("model")
    assert s.loc["r", "median_std"] == 1.0 and s.loc["p", "mean_ratio"] == 1.5 and s.loc["other", "layers"] == 5


def test_gradient_norms_match_direct_autograd():
    m = tiny(True, 8)
    b = batch(12)
    df = gradient_flow(m, b, "t", "trained", batch_size=12)
    # direct: train-mode copy, hooks keep block inputs, one backward, .grad read off the parameters
    c = copy.deepcopy(m).train()
    kept = []
    hooks = [blk.register_forward_pre_hook(lambda mod, args: (args[0].retain_grad(), kept.append(args[0]))[-1] and None)
             for blk in c._blocks]
    try:
        loss = F.cross_entropy(c(b.x), b.y, reduction="sum")
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    for i, blk in enumerate(c._blocks):
        want_in = kept[i].grad.flatten(1).norm(dim=1).mean().item()
        want_w = math.sqrt(blk.conv1.weight.grad.norm().item() ** 2 + blk.conv2.weight.grad.norm().item() ** 2) / 12
        assert df.loc[i, "grad_input_l2"] == pytest.approx(want_in, rel=1e-4)
        assert df.loc[i, "grad_weight_l2"] == pytest.approx(want_w, rel=1e-4)


def test_lambda_sweep_rows_and_plain_equivalence():
    m = tiny(True, 14)
    b = batch(8)
    df = lambda_sweep(m, b, "t", (0.0, 1.0, 1.5), batch_size=8)
    assert sorted(df["lambda"].unique()) == [0.0, 1.0, 1.5] and len(df) == 3 * m.num_blocks
    plain = tiny(False, 14)
    plain.load_state_dict(m.state_dict())
    p = gradient_flow(plain, b, "p", "init", batch_size=8)
    lam0 = df[df["lambda"] == 0.0].reset_index(drop=True)
    assert torch.allclose(torch.tensor(lam0["grad_input_l2"].values), torch.tensor(p["grad_input_l2"].values))


def test_binomial_paths():
    d = path_distribution(54)
    assert d["fraction"].sum() == pytest.approx(1.0, abs=1e-12)
    assert d["n_paths"].sum() == 2 ** 54
    assert d[(d.length >= 19) & (d.length <= 35)]["fraction"].sum() == pytest.approx(0.980, abs=0.0005)
    assert d.loc[27, "n_paths"] == math.comb(54, 27)


def test_path_gradient_of_length_zero_is_the_skip_only_net():
    m = tiny(True, 14)
    b = batch(8)
    df = path_gradients(m, b, "t", samples_per_length=1, batch_size=8, lengths=[0])
    # length 0: the gradient goes only along shortcuts; compute it directly as that linear map's gradient
    x0 = m.stem_forward(b.x).detach().requires_grad_(True)
    h = x0
    for blk in m._blocks:
        f, s = blk.branch(h), blk.shortcut(h)
        h = blk.relu2(f.detach() + s)
    (g,) = torch.autograd.grad(F.cross_entropy(m.head(h), b.y, reduction="sum"), x0)
    # same images? path_gradients draws with replacement from its own generator: recompute with the same draw
    idx = torch.randint(0, len(b), (8,), generator=torch.Generator().manual_seed(0))
    x0 = m.stem_forward(b.x[idx]).detach().requires_grad_(True)
    h = x0
    for blk in m._blocks:
        h = blk.relu2(blk.branch(h).detach() + blk.shortcut(h))
    (g,) = torch.autograd.grad(F.cross_entropy(m.head(h), b.y[idx], reduction="sum"), x0)
    assert df.loc[0, "grad_norm"] == pytest.approx(g.flatten(1).norm(dim=1).mean().item(), rel=1e-5)
    assert df.loc[0, "total_grad"] == df.loc[0, "grad_norm"]


def test_kendall_tau_known_answers():
    assert kendall_tau([0, 1, 2, 3]) == 1.0
    assert kendall_tau([3, 2, 1, 0]) == -1.0
    assert kendall_tau([1, 0, 2, 3]) == pytest.approx(1 - 2 / 6)


def test_mean_ci95_known_answer():
    m, lo, hi = mean_ci95([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(4.303 / math.sqrt(3), rel=1e-4) and m - lo == pytest.approx(hi - m)


@pytest.mark.skipif(not __import__("conftest").HAVE_DATA, reason="CIFAR-10 not found; set RESLENS_DATA")
@pytest.mark.parametrize("name", ["plain20", "resnet20"])
def test_the_folded_bfloat16_sweep_stays_within_rounding_of_float32(name):
    """The deletion sweeps' inference copy (BN folded, bfloat16 conv weights, autocast) against the zoo net in float32
    on 300 test images: every single-block deletion within 1 point (3 images), 0.35 points on average (measured on the
    zoo at 500 images: ``_prefix.FLOAT32_GAP``), the cached model untouched."""
    from analysis.core.common import eval_sample, same_state, state_fingerprint
    from analysis.core.zoo import load_pretrained

    m = load_pretrained(name, "cpu")
    before = state_fingerprint(m)
    b = eval_sample(300, 0, torch.device("cpu"))
    fast = delete_single(m, b, name)["error_pct"]
    exact = delete_single(m, b, name, cache=PrefixCache(m, b, bf16=False))["error_pct"]
    diff = (fast - exact).abs()
    assert diff.max() <= 1.0 + 1e-9 and diff.mean() <= 0.35, diff.tolist()
    assert same_state(m, before)


def test_prefix_reuse_equals_full_recompute():
    m = tiny(True, 20)
    b = batch(40)
    cache = PrefixCache(m, b, chunk=16, bf16=False)
    single = delete_single(m, b, "t", cache=cache)
    for i in range(m.num_blocks):
        assert single.loc[i, "error_pct"] == full_error_pct(m, b, skip=[i], bf16=False)
    # the intact error comes from the pass that filled the cache, in float32 and in bfloat16
    assert single["intact_error_pct"].iloc[0] == cache.error_pct(3, order=list(range(m.num_blocks))) == full_error_pct(
        m, b, bf16=False)
    fast = PrefixCache(m, b, chunk=16)  # bfloat16: the cache is filled by the folded copy that runs the sweeps
    assert fast.intact_error_pct() == full_error_pct(m, b, chunk=16)
    with torch.no_grad(), autocast(torch.device("cpu"), True):
        own, _ = fast.model.block_inputs(b.x[:16].contiguous(memory_format=torch.channels_last))
    assert all(torch.equal(a, c) for a, c in zip(fast._chunks[0][1], own))
    assert [fast.error_pct(i, skip={i}) for i in range(m.num_blocks)] == [
        full_error_pct(m, b, skip=[i], chunk=16) for i in range(m.num_blocks)]
    rnd = delete_random(m, b, "t", [0, 2, 3], trials=3, seed=1, cache=cache)
    assert (rnd["k"] == 0).sum() == 1
    for _, r in rnd.iterrows():
        skip = [m.block_names().index(n) for n in r["blocks"].split()] if r["blocks"] else []
        assert r["error_pct"] == full_error_pct(m, b, skip=skip, bf16=False)
    re = reorder(m, b, "t", trials=4, seed=2, cache=cache)
    for _, r in re.iterrows():
        order = [int(v) for v in r["order"].split()]
        assert r["error_pct"] == full_error_pct(m, b, order=order, bf16=False)
        assert r["kendall_tau"] == kendall_tau(order)
    summ = summarize_random(rnd)
    assert list(summ["k"]) == [0, 2, 3]
    assert (summ["ci95_low"] >= 0).all() and (summ["ci95_high"] <= 100).all()


def test_a_deletion_asked_again_is_read_back_not_recomputed():
    """The cache keeps each variant's error: the random sweep's k = 1 draws are single deletions the page has run
    (no forward pass for them), the values equal to a fresh computation; another variant is computed."""
    m = tiny(True, 20)
    b = batch(40)
    cache = PrefixCache(m, b, chunk=16, bf16=False)
    single = delete_single(m, b, "t", cache=cache)
    runs = []
    real = cache.model.forward_from
    cache.model.forward_from = lambda *a, **k: runs.append(a[0]) or real(*a, **k)  # float32: the cache runs m, built here
    one = delete_random(m, b, "t", [1], trials=6, seed=3, cache=cache)
    assert runs == []  # every k = 1 draw was a single deletion already computed
    for _, r in one.iterrows():
        i = m.block_names().index(r["blocks"])
        assert r["error_pct"] == single.loc[i, "error_pct"] == full_error_pct(m, b, skip=[i], bf16=False)
    two = delete_random(m, b, "t", [2], trials=3, seed=3, cache=cache)
    assert len(runs) == 3 * two["blocks"].nunique() > 0  # each new variant once, over the chunks of 16, 16 and 8 images
    for _, r in two.iterrows():
        skip = [m.block_names().index(n) for n in r["blocks"].split()]
        assert r["error_pct"] == full_error_pct(m, b, skip=skip, bf16=False)
    assert cache.error_pct(2, skip=[2, 5]) == full_error_pct(m, b, skip=[2, 5], bf16=False)  # a list as the key


def test_threads_sharing_one_cache_get_what_one_thread_alone_gets():
    """The page's thread and the slider's prefetch share one cache (and its kept errors): four threads asking for
    overlapping deletions at once get exactly the errors of a fresh cache asked one call at a time."""
    from concurrent.futures import ThreadPoolExecutor

    m = tiny(True, 20)
    b = batch(40)
    alone = PrefixCache(m, b, chunk=16)
    want = {k: delete_random(m, b, "t", [k], trials=4, seed=5, cache=alone)["error_pct"].tolist() for k in (1, 2, 3)}
    shared = PrefixCache(m, b, chunk=16)
    jobs = [1, 2, 3, 1, 2, 3, 2, 1]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda k: (k, delete_random(m, b, "t", [k], trials=4, seed=5, cache=shared)), jobs))
    for k, df in got:
        assert df["error_pct"].tolist() == want[k]
    assert len(shared._done) == len(alone._done)  # the same variants kept, none twice

def test_landscape_at_origin_is_the_model_loss():
    m = tiny(True, 8)
    b = batch(16)
    df = landscape(m, b, "t", [0.0, 0.5], None, seed=0, bf16=False)
    with torch.no_grad():
        want = F.cross_entropy(m(b.x), b.y).item()
    assert df.loc[0, "loss"] == pytest.approx(want, rel=1e-5)
    assert df.loc[1, "loss"] != df.loc[0, "loss"]
    d = filter_normalized_direction(m, 0)
    w = dict(m.named_parameters())["stage1.block0.conv1.weight"]
    assert torch.allclose(d["stage1.block0.conv1.weight"].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-4)
    assert d["stage1.block0.bn1.weight"].abs().sum() == 0


def test_integrated_gradients_completeness():
    m = tiny(True, 8).double().float()
    x = torch.randn(1, 3, 32, 32)
    r = attribute_image(m, x, "t", "img", None, ["IntegratedGradients"], ig_steps=300, with_infidelity=False,
                        gradcam=False)
    with torch.no_grad():
        out, base = m(x), m(torch.zeros_like(x))
    tgt = int(out.argmax())
    gap = (out[0, tgt] - base[0, tgt]).item()
    assert r.maps["IntegratedGradients"].sum() == pytest.approx(gap, abs=0.02 * abs(gap) + 1e-3)
    assert r.convergence_delta < 0.02 * abs(gap) + 1e-3


def test_oom_fallback_halves_the_chunk():
    seen = []

    def fn(sl):
        if sl.stop - sl.start > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        seen.append((sl.start, sl.stop))
        return sl.stop - sl.start

    assert sum(chunked(fn, 23, 16)) == 23
    assert all(b - a <= 5 for a, b in seen) and seen[0] == (0, 4)
    with pytest.raises(ValueError):
        chunked(lambda sl: (_ for _ in ()).throw(ValueError("other")), 4, 2)


def test_row_norms_are_each_images_norm_in_any_dtype_and_layout():
    from analysis.core.common import row_norms

    g = torch.Generator().manual_seed(0)
    t = torch.randn(6, 16, 8, 8, generator=g) * torch.arange(1, 7).view(6, 1, 1, 1)  # norms 1x to 6x apart
    want = t.double().flatten(1).norm(dim=1)
    for x in (t, t.contiguous(memory_format=torch.channels_last), t[:, :, ::2, ::2], t.to(torch.bfloat16),
              t.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)):
        got = row_norms(x)
        ref = want if x.shape == t.shape else x.double().flatten(1).norm(dim=1)
        exact = x.double().flatten(1).norm(dim=1)  # the norm of the values as stored (bfloat16 rounds t)
        assert got.dtype == torch.float32 and got.shape == (6,)
        assert torch.allclose(got.double(), exact, rtol=1e-6), (x.dtype, x.stride())
        assert torch.allclose(got.double(), ref, rtol=1e-2)
    assert row_norms(torch.zeros(2, 3)).tolist() == [0.0, 0.0]


def test_oom_in_attributions_and_gradients_retries_smaller(monkeypatch):
    """A simulated CUDA out-of-memory in Captum or in a gradient batch is retried with smaller batches."""
    from analysis.core.common import retry_halving

    calls = []

    def flaky(ibs):
        calls.append(ibs)
        if ibs is None or ibs > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return "ok"

    assert retry_halving(flaky, None) == "ok" and calls == [None, 64, 32, 16]
    m = tiny(True, 8)
    b = batch(16)
    real = torch.autograd.grad
    seen = []

    def grad_with_oom(outputs, inputs, *a, **k):
        n = inputs[0].shape[0]
        seen.append(n)
        if n > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(outputs, inputs, *a, **k)

    monkeypatch.setattr(torch.autograd, "grad", grad_with_oom)
    df = gradient_flow(m, b, "t", "trained", batch_size=16)
    assert seen[:3] == [16, 8, 4] and df["bn"].iloc[0] == "batch statistics, batches of 4"


def test_gradient_split_adds_up_and_knows_a_dead_branch():
    from analysis.analyses.gradients import gradient_split

    m = tiny(True, 14)
    with torch.no_grad():
        m.block(1).bn2.weight.zero_()
        m.block(1).bn2.bias.zero_()
    b = batch(8)
    df = gradient_split(m, b, "t", batch_size=4).set_index("block_index")
    assert df.loc[1, "branch_grad_l2"] == 0.0 and df.loc[1, "shortcut_share"] == 1.0  # F(x) = 0 carries nothing
    # the two parts add up to the whole gradient at each block's input (compared with plain autograd)
    x = b.x.clone()
    with torch.no_grad():
        inputs, _ = m.block_inputs(x)
    h = inputs[3].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(m.forward_from(3, h), b.y, reduction="sum"), h)
    assert df.loc[3, "total_grad_l2"] == pytest.approx(g.flatten(1).norm(dim=1).mean().item(), rel=1e-5)
    plain = gradient_split(tiny(False, 14), b, "p", batch_size=8)
    assert (plain["shortcut_share"] == 0).all() and (plain["shortcut_grad_l2"] == 0).all()


@pytest.mark.parametrize("name", ["resnet14", "resnet14-preact", "resnet14-gate-6", "resnet14b", "resnet29-bottleneck"])
def test_gradient_split_equals_back_propagating_with_one_path_detached(name):
    """The one-pass split against its definition, block by block: back-propagate the summed loss with the branch
    (or the shortcut) detached and read the gradient at the block's input."""
    from analysis.analyses.gradients import gradient_split

    m = tiny(name=name)
    b = batch(6)
    df = gradient_split(m, b, "t", batch_size=6).set_index("block_index")
    with torch.no_grad():
        inputs, _ = m.block_inputs(b.x)
    for info, blk in m.blocks():
        parts = []
        for through in ("shortcut", "branch"):
            xi = inputs[info.index].clone().requires_grad_(True)
            f, s = blk.branch(xi), blk.shortcut(xi)
            out = blk.merge(f.detach(), s, 1.0) if through == "shortcut" else blk.merge(f, s.detach(), 1.0)
            (g,) = torch.autograd.grad(F.cross_entropy(m.forward_from(info.index + 1, out), b.y, reduction="sum"), xi)
            parts.append(g.flatten(1).norm(dim=1))
        share = (parts[0] / (parts[0] + parts[1])).mean().item()
        assert df.loc[info.index, "shortcut_grad_l2"] == pytest.approx(parts[0].mean().item(), rel=1e-4)
        assert df.loc[info.index, "branch_grad_l2"] == pytest.approx(parts[1].mean().item(), rel=1e-4)
        assert df.loc[info.index, "shortcut_share"] == pytest.approx(share, rel=1e-4)


@pytest.mark.parametrize("name,written", [("resnet14", True), ("plain14", True), ("resnet14-scale0.5f", True),
                                          ("resnet29-bottleneck", True), ("resnet14-preact", False),
                                          ("resnet14-gate-6", False), ("resnet29-bottleneck-bnafter", False)])
def test_branch_vjp_equals_autograd_for_many_cotangents(name, written):
    """Block.branch_vjp, where a block writes its branch's product down (original units, eval-mode BN, no gate),
    equals autograd's batched gradient on every block, the downsampling ones (stride 2) included; elsewhere None."""
    m = tiny(name=name)
    with torch.no_grad():
        h = m.stem_forward(batch(5).x)
    gen = torch.Generator().manual_seed(0)
    for info, blk in m.blocks():
        hi = h.detach().requires_grad_(True)
        f = blk.branch(hi)
        got = blk.branch_vjp(hi.detach())
        assert (got is not None) == written, (name, info.name)
        if got is not None:
            value, vjp = got
            assert not value.requires_grad and torch.allclose(value, f.detach(), rtol=1e-6, atol=1e-6), (name, info.name)
            cot = torch.randn((3, *f.shape), generator=gen)
            (want,) = torch.autograd.grad(f, hi, cot, is_grads_batched=True)
            prod = vjp(cot)
            assert prod.shape == want.shape and not prod.requires_grad, (name, info.name)
            assert ((prod - want).norm() / want.norm()).item() < 1e-6, (name, info.name)
        with torch.no_grad():
            h = blk(h)


def test_path_gradients_equal_back_propagating_each_draw_on_its_own():
    """One forward pass per round and the draws' backward passes batched: the numbers of the straightforward
    measurement, one draw at a time (the intact forward values, the gradient routed by detaching)."""
    from analysis.analyses.deletion import _path_forward, path_draws

    for name in ("resnet14", "resnet14-preact", "resnet14-scale0.5", "resnet14-scale0.5f", "resnet29-bottleneck",
                 "resnet29-bottleneck-bnafter"):
        m = tiny(name=name)
        b = batch(24)
        got = path_gradients(m, b, "t", samples_per_length=3, batch_size=8, seed=1)
        per_k: dict[int, list[float]] = {}
        for idx, draws in path_draws(m.num_blocks, len(b), range(m.num_blocks + 1), 3, 8, 1):
            for k, blocks in draws:
                with torch.no_grad():
                    h0 = m.stem_forward(b.x[idx])
                h0.requires_grad_(True)
                loss = F.cross_entropy(m.head(_path_forward(m, h0, blocks)), b.y[idx], reduction="sum")
                (g,) = torch.autograd.grad(loss, h0)
                per_k.setdefault(k, []).append(g.flatten(1).norm(dim=1).mean().item())
        want = [sum(v) / len(v) for _, v in sorted(per_k.items())]
        assert got["grad_norm"].tolist() == pytest.approx(want, rel=1e-5), name
        assert got["grad_norm"].gt(0).all() and len(got) == m.num_blocks + 1


@pytest.mark.parametrize("name", ["plain14", "resnet14", "resnet14-preact", "resnet14-relubefore", "resnet14-gate-6",
                                  "resnet29-bottleneck"])
def test_conductance_of_every_block_in_one_pass_equals_captums_layer_by_layer(name):
    from captum.attr import LayerConductance

    from analysis.analyses.attributions import conductance_per_block

    m = tiny(name=name)
    x = batch(1).x
    df = conductance_per_block(m, x, "t", n_steps=8, internal_batch_size=4)  # three chunks of the 9 alphas
    tgt = int(df["target"].iloc[0])
    for info, blk in list(m.blocks())[::2]:
        kw = dict(baselines=torch.zeros_like(x), target=tgt, n_steps=8)
        want_f = LayerConductance(m, blk.branch_output).attribute(x, **kw).sum().item()
        want_out = LayerConductance(m, blk).attribute(x, **kw).sum().item()
        got = df.set_index("block_index").loc[info.index]
        assert got["conductance"] == pytest.approx(want_f, rel=1e-4, abs=1e-6)
        assert got["conductance_output"] == pytest.approx(want_out, rel=1e-4, abs=1e-6)


def test_the_gradient_parts_make_the_whole_run_and_lambda_one_at_init_is_the_init_state():
    """The dashboard caches each part on its own (``Analysis.atoms``): the parts' tables together are exactly the
    table of one run with all the parameters, and λ = the net's own scale at initialisation *is* the init state,
    so the λ section and the first chart (and the Identity mappings page) share that result."""
    from analysis.engine.context import Context
    from analysis.engine.registry import get, run_one

    a = get("gradients")
    b = random_sample(12, 0, torch.device("cpu"))
    for arch, own in (("resnet14", 1.0), ("resnet14-scale0.5", 0.5)):
        m = tiny(name=arch)
        p = a.params(**{**a.quick, "states": ("trained", "init"), "lambdas": (0.5, 1.0, 1.5)})
        parts = a.parts(p, m)
        other = [lam for lam in (0.5, 1.0, 1.5) if lam != own]
        assert [(q["states"], q["lambdas"]) for q in parts] == [(("trained",), ()), (("init",), ())] + [
            ((), (lam,)) for lam in other]
        assert a.parts({**p, "states": (), "lambdas": (own,)}, m) == [parts[1]]

        def table(q):
            ctx = Context(name="t", model=m, arch=arch, seed=0, samples=12, batch=b, params=q)
            return run_one(a, ctx)["gradients"]

        whole = table(p)
        joined = pd.concat([table(q) for q in parts], ignore_index=True)
        key = ["state", "lambda", "block_index"]
        pd.testing.assert_frame_equal(whole.sort_values(key).reset_index(drop=True),
                                      joined.sort_values(key).reset_index(drop=True))
        assert sorted(set(whole["lambda"])) == sorted({own, *other})
    plain = tiny(False, 14)
    assert [q["lambdas"] for q in a.parts(p, plain)] == [(), ()]  # a plain net has no shortcut to scale


@pytest.mark.slow
def test_input_gradients_in_bfloat16_stay_within_two_percent_of_float32_on_the_zoo():
    """The mode the λ charts and the Identity mappings page use (``weight_grads=False``): input gradients only, in
    bfloat16 autocast on the CPU; their norms against float32 at every block, trained and at initialisation."""
    from analysis.core.zoo import fresh_model, load_pretrained

    b = random_sample(64, 0, torch.device("cpu"))
    for name in ("plain20", "resnet20"):
        for state, m in (("trained", load_pretrained(name, device="cpu")), ("init", fresh_model(name, 0, "cpu"))):
            full = gradient_flow(m, b, name, state, batch_size=32)
            fast = gradient_flow(m, b, name, state, batch_size=32, weight_grads=False)
            rel = (fast["grad_input_l2"] / full["grad_input_l2"] - 1).abs()
            assert rel.max() < 0.02, (name, state, rel.max())
            assert fast["grad_weight_l2"].isna().all() and full["grad_weight_l2"].notna().all()
            assert set(fast["precision"]) == {"bfloat16 autocast, input gradients only"}
            assert set(full["precision"]) == {"float32"}
