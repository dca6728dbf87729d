"""The rest of He et al. 2016's shortcuts and units: exclusive and shortcut-only gating, dropout on the shortcut, and
bottleneck blocks. Parameter counts against hand formulas, the gates' limits against nets ResLens already checks, the
dropout mask's statistics, and every analysis-facing method on tiny nets. (Block-by-block formulas for every variant:
tests/analyses/test_variants.py.)"""

import math

import pytest
import torch
import torch.nn.functional as F

from analysis.analyses.gradients import gradient_flow
from analysis.analyses.responses import responses
from analysis.core.arch import parse_name
from analysis.core.common import private_copy, random_sample
from analysis.core.construct import ConstructionRefused, construct_deeper
from analysis.core.blocks import ShortcutDropout
from analysis.core.models import build_model, count_params
from conftest import tiny

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def bn_params(c):
    return 2 * c


def bottleneck_params(depth: int, projections: bool = False) -> int:
    """Parameters of a 9n+2 bottleneck net counted by hand: stem, n blocks of 1x1-3x3-1x1 (+ BN) a stage, classifier."""
    n = (depth - 2) // 9
    total = 3 * 16 * 9 + bn_params(16)
    c_in = 16
    for p in (16, 32, 64):
        for _ in range(n):
            total += c_in * p + bn_params(p) + 9 * p * p + bn_params(p) + p * 4 * p + bn_params(4 * p)
            if projections and c_in != 4 * p:
                total += c_in * 4 * p + bn_params(4 * p)
            c_in = 4 * p
    return total + 256 * 10 + 10


def test_bottleneck_nets_have_the_papers_shape_and_parameters():
    m = build_model("resnet164-bottleneck")
    assert m.num_blocks == 54 and m.depth == 164  # 18 blocks a stage, three layers each, + stem + classifier
    assert count_params(m) == bottleneck_params(164) == 1_661_274  # He et al. 2016: "1.7M" for ResNet-164
    assert count_params(build_model("resnet164b-bottleneck")) == bottleneck_params(164, projections=True) == 1_704_154
    assert count_params(build_model("plain164-bottleneck")) == count_params(m)  # option A: no shortcut parameters
    assert round(count_params(m) / 1e6, 1) == 1.7
    b = m.block(54 // 3)  # stage2.block0
    assert [tuple(c.weight.shape) for c in b.convs] == [(32, 64, 1, 1), (32, 32, 3, 3), (128, 32, 1, 1)]
    assert [c.stride[0] for c in b.convs] == [2, 1, 1]  # the stride on the first 1x1, as in the authors' code
    assert m.fc.in_features == 256 and [i.planes for i in m.block_info[::18]] == [64, 128, 256]


def test_gated_and_dropout_nets_add_exactly_the_gate_convolutions():
    base = count_params(build_model("resnet56"))
    gate = sum(c_in * c_out + c_out for c_in, c_out in [(16, 16)] * 9 + [(16, 32)] + [(32, 32)] * 8 + [(32, 64)]
               + [(64, 64)] * 8)  # a 1x1 conv with bias on every block, shaped like the block
    assert count_params(build_model("resnet56-gate-6")) == count_params(build_model("resnet56-shortgate-6")) == base + gate
    assert count_params(build_model("resnet56-dropout")) == base
    m = build_model("resnet56-gate-6")
    assert all(torch.equal(b.gate.bias, torch.full_like(b.gate.bias, -6.0)) for _, b in m.blocks())  # b_g at init


def test_names_of_the_new_variants_and_their_refusals():
    a = parse_name("resnet110-shortgate-6")
    assert (a.gate, a.gate_bias, a.shortcut_token, a.name) == ("shortcut-only", -6.0, "shortgate-6", "resnet110-shortgate-6")
    assert parse_name("resnet56-dropout").dropout == 0.5 and parse_name("resnet56-dropout0.2").name == "resnet56-dropout0.2"
    assert parse_name("resnet164-preact-bottleneck").name == "resnet164-bottleneck-preact"
    assert "F times g(x)" in parse_name("resnet56-gate-7").shortcut and "times 0.5 at evaluation" in \
        parse_name("resnet56-dropout").shortcut
    for bad, msg in [("resnet165-bottleneck", "9n\\+2"), ("resnet164-bottleneck-bottleneck", "twice"),
                     ("plain56-gate-6", "plain net has no shortcut"), ("resnet56-gate-6-dropout", "two shortcuts"),
                     ("resnet56-dropout1", "between 0 and 1"), ("resnet56-gate", "unknown part")]:
        with pytest.raises(ValueError, match=msg):
            parse_name(bad)


def _with_weights(name: str, source) -> torch.nn.Module:
    """``name`` built with ``source``'s weights (only the gate is its own)."""
    m = tiny(name=name, depth=14)
    missing, unexpected = m.load_state_dict(source.state_dict(), strict=False)
    assert not unexpected and all(".gate." in k for k in missing)
    return m.eval()


@torch.no_grad()
def test_the_gates_limits_are_nets_resLens_already_has():
    """b_g = -60: g = 0 (to float32), so shortcut-only gating is the residual net and exclusive gating drops F (every
    block its shortcut); b_g = +60: g = 1, so shortcut-only gating is the plain net and exclusive gating too."""
    res = tiny(name="resnet14", depth=14)
    plain = tiny(name="plain14", depth=14)
    plain.load_state_dict(res.state_dict())
    torch.testing.assert_close(_with_weights("resnet14-shortgate-60", res)(X), res(X), rtol=0, atol=0)
    torch.testing.assert_close(_with_weights("resnet14-shortgate60", res)(X), plain(X), rtol=0, atol=0)
    torch.testing.assert_close(_with_weights("resnet14-gate60", res)(X), plain(X), rtol=0, atol=0)
    torch.testing.assert_close(_with_weights("resnet14-gate-60", res)(X), res(X, skip=range(res.num_blocks)),
                               rtol=0, atol=0)


@torch.no_grad()
def test_deleting_a_gated_block_leaves_its_gated_shortcut():
    m = tiny(name="resnet14-gate-6", depth=14)
    ins, _ = m.block_inputs(X)
    blk, h = m.block(1), ins[1]
    g = torch.sigmoid(F.conv2d(h, blk.gate.weight, blk.gate.bias))
    torch.testing.assert_close(blk(h, skip=True), (1 - g) * h, rtol=0, atol=0)
    assert 0.0 < g.mean() < 0.05  # b_g = -6: the gate starts nearly closed on F, the shortcut nearly open


def test_dropout_on_the_shortcut_keeps_half_unscaled_in_training_and_halves_at_evaluation():
    d = ShortcutDropout(0.5)
    s = torch.full((200_000,), 3.0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        kept = d.train()(s)
    assert set(kept.unique().tolist()) == {0.0, 3.0}  # a mask, not rescaled by 1 / (1 - p)
    frac = (kept > 0).float().mean().item()
    assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / s.numel())  # within 4 standard errors of 1 - p
    assert torch.equal(d.eval()(s), torch.full_like(s, 1.5))
    m = tiny(name="resnet14-dropout", depth=14)
    with torch.no_grad():
        ins, _ = m.block_inputs(X)
        torch.testing.assert_close(m.block(1)(ins[1], skip=True), 0.5 * ins[1], rtol=0, atol=0)
        # an analysis's train-mode copy (BN batch statistics) keeps the expectation: the same numbers twice
        c = private_copy(m, train_bn_batch_stats=True)
        assert c.block(1).bn1.training and not c.block(1).drop.training
        assert torch.equal(c(X), c(X))


def test_bottleneck_responses_name_each_layer_and_its_kernel():
    resp, ratio = responses(tiny(name="resnet29-bottleneck-preact", depth=29), random_sample(8, 0, torch.device("cpu")), "t")
    blk = resp[resp["block"] == "stage2.block1"].set_index("layer")
    assert list(blk.index) == ["stage2.block1.bn1", "stage2.block1.bn2", "stage2.block1.conv3"]  # no BN after conv3
    assert list(blk["kernel"]) == ["1x1", "3x3", "1x1"] and list(blk["is_branch_output"]) == [False, False, True]
    assert resp["is_branch_output"].sum() == 9 and (resp["kernel"] == "3x3").sum() == 9 + 1  # + the stem
    assert len(ratio) == 9 and (ratio["ratio"] > 0).all()


def test_gradient_flow_counts_all_three_convolutions_of_a_bottleneck_block():
    m = tiny(name="resnet11-bottleneck", depth=11)
    b = random_sample(8, 0, torch.device("cpu"))
    df = gradient_flow(m, b, "t", "trained", batch_size=8)
    c = private_copy(m, train_bn_batch_stats=True)
    F.cross_entropy(c(b.x), b.y, reduction="sum").backward()
    for i, (_, blk) in enumerate(c.blocks()):
        want = math.sqrt(sum(cv.weight.grad.norm().item() ** 2 for cv in blk.convs)) / 8
        assert df.loc[i, "grad_weight_l2"] == pytest.approx(want, rel=1e-4)
        assert df.loc[i, "grad_conv1_l2"] < df.loc[i, "grad_weight_l2"]


@pytest.mark.parametrize("name", ["resnet29-bottleneck", "resnet29-bottleneck-preact", "resnet29-bottleneck-bnafter"])
def test_a_deeper_bottleneck_net_is_constructed_exactly(name):
    small = tiny(name=name, depth=29, width=16)
    deep, new = construct_deeper(small, 38)
    assert deep.name == name.replace("29", "38") and len(new) == 3
    with torch.no_grad():
        torch.testing.assert_close(deep(X), small(X), rtol=0, atol=1e-5)


def test_the_construction_is_refused_for_gates_dropout_and_plain_bottlenecks():
    for name, msg in [("resnet14-gate-6", "gated"), ("resnet14-dropout", "dropout"), ("plain29-bottleneck", "reduces")]:
        with pytest.raises(ConstructionRefused, match=msg):
            construct_deeper(tiny(name=name, depth=14, width=16), 38 if "bottleneck" in name else 20)
    with pytest.raises(ConstructionRefused, match="9n\\+2"):
        construct_deeper(tiny(name="resnet29-bottleneck", depth=29, width=16), 32)


def test_findings_judge_gates_dropout_and_bottleneck_units_against_the_papers_tables():
    """A made-up zoo with known errors (10,000 test images each): every sentence follows from its numbers and the
    paper's figures for the same net (ResNet-110's for 56-layer basic nets, ResNet-164's for bottleneck nets)."""
    import pandas as pd

    from analysis.analyses.variants import compare_to_identity, paper_error, variant_findings

    rows = [("resnet56", 56, "basic", "original", "identity", 6.5), ("resnet56-gate-6", 56, "basic", "original", "gate-6", 8.5),
            ("resnet56-dropout", 56, "basic", "original", "dropout", 25.0),
            ("resnet56-shortgate-6", 56, "basic", "original", "shortgate-6", 6.6),
            ("resnet164-bottleneck", 164, "bottleneck", "original", "identity", 6.5),
            ("resnet164-bottleneck-preact", 164, "bottleneck", "full-preact", "identity", 5.4)]
    t = pd.DataFrame([{"model": m, "depth": d, "block": b, "unit": u, "shortcut": sc, "train_error_pct": 0.1,
                       "test_error_pct": e, "test_images": 10_000, "paper_test_error_pct": paper_error(u, sc, b == "bottleneck")[0]}
                      for m, d, b, u, sc, e in rows])
    assert list(t["paper_test_error_pct"]) == [6.61, 8.70, "fail", 6.91, 5.93, 5.46]
    text = " ".join(variant_findings(t))
    assert "resnet56-gate-6: the paper has this shortcut worse than identity (8.70 vs 6.61 % at 110 layers); here " \
           "resnet56-gate-6 has 8.50 % against 6.50 % for resnet56 (worse;" in text and "; as in the paper." in text
    assert "resnet56-dropout: the paper's ResNet-110 with this shortcut failed" in text
    assert "a failure by the paper's definition too." in text
    assert "resnet56-shortgate-6 has 6.60 % against 6.50 % for resnet56 (no different within the 95 % interval" in text
    assert "Units at 164 layers (bottleneck blocks): 1 of 1 pairs are ordered as in the paper's Table 2" in text
    cmp = compare_to_identity(t).set_index("model")
    assert cmp.loc["resnet164-bottleneck-preact", "identity"] == "resnet164-bottleneck"  # not the 56-layer basic net
    assert cmp.loc["resnet56-gate-6", "test_diff_pts"] == pytest.approx(2.0)


def test_uploaded_bottleneck_and_gated_checkpoints_without_metadata():
    """A bottleneck file without metadata is read as a bottleneck net from its tensors (conv3, a 256-wide classifier);
    a file with gate tensors but no metadata is refused in one sentence (which gating and which b_g cannot be read off
    the tensors), never loaded as something else."""
    from safetensors.torch import save

    from analysis.core.checkpoints import CheckpointRefused
    from analysis.core.zoo import load_uploaded

    m = tiny(name="resnet29-bottleneck", depth=29, width=16)
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    model, info = load_uploaded(save(state), residual=True)
    assert info["name"] == "resnet29-bottleneck" and model.arch.bottleneck and model.fc.in_features == 256
    with torch.no_grad():
        torch.testing.assert_close(model(X), m(X), rtol=0, atol=0)
    g = tiny(name="resnet14-gate-6", depth=14, width=16)
    with pytest.raises(CheckpointRefused, match="gate tensors"):
        load_uploaded(save({k: v.contiguous() for k, v in g.state_dict().items()}), residual=True)
    wrong = dict(state)
    wrong["fc.weight"] = torch.zeros(10, 64)  # a basic net's classifier on bottleneck blocks
    with pytest.raises(CheckpointRefused, match="not \\(10, 256\\)"):
        load_uploaded(save(wrong), residual=True)
