"""Unit and shortcut variants (He et al. 2016): names, parameters, and every forward-pass option the
analyses rely on, each against a hand computation with functional ops."""

import pytest
import torch
import torch.nn.functional as F

from analysis.core.common import random_sample, same_state, state_fingerprint
from analysis.analyses.deletion import _path_forward
from analysis.analyses.gradients import gradient_flow
from analysis.core.arch import UNITS, parse_name
from analysis.core.models import build_model, count_params
from analysis.analyses.responses import responses
from analysis.core.zoo import load_uploaded, model_from_state, save_checkpoint
from conftest import tiny

VARIANTS = ["resnet20", "resnet20b", "resnet20-conv1x1", "resnet20-scale0.5", "resnet20-scale0.5f",
            "resnet20-bnafter", "resnet20-relubefore", "resnet20-relupreact", "resnet20-preact",
            "resnet20-gate-6", "resnet20-gate0", "resnet20-shortgate-6", "resnet20-dropout",
            # 29 = 9n+2 with n = 3: three bottleneck blocks a stage (two of one shape after the first)
            "resnet29-bottleneck", "resnet29b-bottleneck", "resnet29-bottleneck-preact", "resnet29-bottleneck-bnafter",
            "resnet29-bottleneck-relubefore", "resnet29-bottleneck-relupreact", "resnet29-bottleneck-gate-6"]


def bn(t, m):
    return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def conv(t, c):
    return F.conv2d(t, c.weight, stride=c.stride, padding=c.padding)


def hand_gate(blk, h):
    """g(x) = sigmoid(W_g x + b_g), the 1x1 conv with the block's stride."""
    return torch.sigmoid(F.conv2d(h, blk.gate.weight, blk.gate.bias, stride=blk.stride))


def hand_shortcut(blk, h):
    """The skip term as it reaches the addition (before the shortcut scale lam)."""
    x = h
    if blk.projection is not None:
        s = bn(conv(h, blk.projection[0]), blk.projection[1])
    elif blk.downsample:
        if blk.stride != 1:
            h = h[:, :, ::blk.stride, ::blk.stride]
        pad = blk.planes - blk.in_planes
        s = torch.cat([h.new_zeros(h.shape[0], pad // 2, *h.shape[2:]), h,
                       h.new_zeros(h.shape[0], pad - pad // 2, *h.shape[2:])], 1)
    else:
        s = h
    if blk.gate is not None:
        s = s * (1 - hand_gate(blk, x))
    if blk.drop is not None:  # eval mode: the expectation of a Bernoulli(1 - p) mask
        s = s * (1 - blk.drop.p)
    return s


def hand_block(blk, h, lam):
    """The unit's formula (He et al. 2016, Fig. 4), written out with functional ops, for two convs or three."""
    u, k = blk.unit, 3 if blk.bottleneck else 2
    x = h
    if u in ("relu-preact", "full-preact") and blk.preact:
        x = F.relu(bn(x, blk.bn0)) if u == "full-preact" else F.relu(x)
    for i in range(1, k):
        x = F.relu(bn(conv(x, getattr(blk, f"conv{i}")), getattr(blk, f"bn{i}")))
    f = conv(x, getattr(blk, f"conv{k}"))
    if u in ("original", "relu-before-add", "relu-preact"):
        f = bn(f, getattr(blk, f"bn{k}"))
    if u == "relu-before-add":
        f = F.relu(f)
    f = f * blk.branch_scale
    if blk.gate is not None and blk.gate_kind == "exclusive":
        f = f * hand_gate(blk, h)
    out = f + lam * hand_shortcut(blk, h)
    if u == "original":
        return F.relu(out)
    if u == "bn-after-add":
        return F.relu(bn(out, getattr(blk, f"bn{k}")))
    return out


@pytest.fixture(params=VARIANTS)
def variant(request):
    return tiny(name=request.param, depth=20)


def inputs_of(m, n=3, seed=0):
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ins, _ = m.block_inputs(x)
    return x, ins


def test_names_round_trip_and_describe_the_architecture():
    a = parse_name("resnet110-scale0.5f")
    assert (a.depth, a.unit, a.option, a.lam, a.scale_branch, a.branch_scale) == (110, "original", "A", 0.5, True, 0.5)
    assert parse_name("resnet110-preact").unit == "full-preact" and parse_name("resnet56b").option == "B"
    assert parse_name("RESNET56-BNAFTER").name == "resnet56-bnafter"
    assert parse_name("resnet56-conv1x1-preact").name == "resnet56-preact-conv1x1"  # one canonical order
    for n in VARIANTS + ["plain20", "plain56-preact", "resnet110b-relupreact", "resnet56-relubefore-scale0.9"]:
        assert parse_name(n).name == n and build_model(n).name == n
    for bad, msg in [("resnet56-preact-bnafter", "two units"), ("resnet56b-conv1x1", "two shortcuts"),
                     ("plain56-scale0.5", "plain net has no shortcut"), ("resnet56-wide", "unknown part"),
                     ("resnet56-scale1f", "lam = 1"), ("resnet52-preact", "6n\\+2"), ("vgg16", "plain\\|resnet")]:
        with pytest.raises(ValueError, match=msg):
            parse_name(bad)


def test_parameter_counts():
    base = count_params(build_model("resnet56"))
    for unit in ("bnafter", "relubefore", "relupreact", "preact"):
        assert count_params(build_model(f"resnet56-{unit}")) == base  # BNs move, their total width does not
    assert count_params(build_model("resnet56-scale0.5")) == count_params(build_model("resnet56-scale0.5f")) == base
    # option B: a 1x1 conv + BN at the two downsampling blocks; conv1x1: on all 27 blocks
    assert count_params(build_model("resnet56b")) == base + (16 * 32 + 64) + (32 * 64 + 128)
    per_stage = [(16, 16, 9), (32, 32, 9), (64, 64, 9)]
    extra = sum(n * (c * c + 2 * c) for c, _, n in per_stage) - (32 * 32 + 64 * 64) + (16 * 32 + 32 * 64)
    assert count_params(build_model("resnet56-conv1x1")) == base + extra
    assert count_params(build_model("plain56-preact")) == base


def test_full_preact_has_the_papers_first_and_last_activation():
    m = build_model("resnet20-preact")
    assert not hasattr(m.block(0), "bn0") and hasattr(m.block(1), "bn0")  # the stem's BN-ReLU serves block 0
    assert [type(c).__name__ for c in m.post] == ["BatchNorm2d", "ReLU"]
    assert [type(c).__name__ for c in build_model("resnet20-relupreact").post] == ["ReLU"]
    assert build_model("resnet20").post is None


@torch.no_grad()
def test_every_block_matches_its_formula(variant):
    m = variant
    _, ins = inputs_of(m)
    for info, blk in m.blocks():
        h = ins[info.index]
        torch.testing.assert_close(blk(h), hand_block(blk, h, blk.shortcut_scale), rtol=1e-5, atol=1e-5)
        for lam in (0.0, 0.5, 1.5):  # the lambda override replaces the trained shortcut scale
            torch.testing.assert_close(blk(h, scale=lam), hand_block(blk, h, lam), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_skipping_a_block_leaves_exactly_its_scaled_shortcut(variant):
    m = variant
    x, ins = inputs_of(m)
    for info, blk in m.blocks():
        h = ins[info.index]
        torch.testing.assert_close(blk(h, skip=True), blk.shortcut_scale * hand_shortcut(blk, h), rtol=0, atol=0)
    h = m.stem_forward(x)
    for info, blk in m.blocks():
        h = blk.shortcut_scale * hand_shortcut(blk, h)
    expected = m.fc((m.post(h) if m.post is not None else h).mean((2, 3)))
    torch.testing.assert_close(m(x, skip=range(m.num_blocks)), expected, rtol=1e-5, atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("name,layer", [("resnet20-preact", "conv2"), ("resnet20-relupreact", "bn2"),
                                        ("resnet20-relubefore", "bn2"), ("resnet20", "bn2")])
def test_a_zero_last_layer_passes_the_input_through_exactly(name, layer):
    m = tiny(name=name, depth=20)
    i = 2  # stage1.block2: same shape in and out, not the first block
    with torch.no_grad():
        for p in m.block(i).get_submodule(layer).parameters():
            p.zero_()
    x, ins = inputs_of(m)
    h = ins[i]
    if name == "resnet20-preact":
        h = torch.randn_like(h)  # any input, negative values too: nothing follows the addition
    assert torch.equal(m.block(i)(h), h)
    assert torch.equal(m(x), m(x, skip=[i]))


@torch.no_grad()
def test_zero_branch_known_answers_for_scaled_and_bn_after_add():
    m = tiny(name="resnet20-scale0.5", depth=20)
    m.block(2).bn2.weight.zero_(), m.block(2).bn2.bias.zero_()
    h = inputs_of(m)[1][2]
    assert torch.equal(m.block(2)(h), F.relu(0.5 * h))
    m = tiny(name="resnet20-bnafter", depth=20)
    m.block(2).conv2.weight.zero_()
    h = inputs_of(m)[1][2]
    torch.testing.assert_close(m.block(2)(h), F.relu(bn(h, m.block(2).bn2)), rtol=0, atol=0)


@torch.no_grad()
def test_trained_lambda_is_the_default_and_overrides_take_sequences():
    m = tiny(name="resnet14-scale0.5f", depth=14)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(m(x), m(x, scale=0.5))
    assert torch.equal(m(x, scale=1.0), m(x, scale=[1.0] * m.num_blocks))
    assert torch.equal(m(x, scale={3: 1.0}), m(x, scale=[0.5] * 3 + [1.0] + [0.5] * (m.num_blocks - 4)))
    assert not torch.allclose(m(x), m(x, scale=1.0))


@torch.no_grad()
def test_cached_inputs_and_reordering(variant):
    m = variant
    x, ins = inputs_of(m)
    full = m(x)
    for i in range(m.num_blocks):
        torch.testing.assert_close(m.forward_from(i, ins[i]), full, rtol=0, atol=0)
    order = list(range(m.num_blocks))
    order[1], order[2] = 2, 1  # two same-shape blocks of stage 1
    h = m.block(1)(m.block(2)(ins[1]))
    for i in range(3, m.num_blocks):
        h = m.block(i)(h)
    expected = m.head(h)
    torch.testing.assert_close(m.forward_from(1, ins[1], order=order), expected, rtol=0, atol=0)
    torch.testing.assert_close(m(x, skip=[4]), m.forward_from(2, ins[2], skip=[4]), rtol=0, atol=0)


@torch.no_grad()
def test_path_forward_keeps_the_intact_values(variant):
    m = variant
    h0 = inputs_of(m)[1][0]
    intact = m.run_blocks(h0)[0]
    for through in (set(), {0, 3}, set(range(m.num_blocks))):
        torch.testing.assert_close(_path_forward(m, h0, through), intact, rtol=1e-6, atol=1e-6)


def test_responses_name_the_layer_that_was_measured():
    resp, _ = responses(tiny(name="resnet14-preact", depth=14), random_sample(8, 0, torch.device("cpu")), "t")
    layers = set(resp["layer"])
    assert "stage1.block1.conv2" in layers and "stage1.block1.bn2" not in layers
    assert set(resp.loc[resp["is_branch_output"], "layer"].str.rsplit(".", n=1).str[1]) == {"conv2"}
    assert resp["is_branch_output"].sum() == 6  # one branch output per block


def test_gradient_flow_reports_the_trained_lambda():
    m = tiny(name="resnet20-scale0.5", depth=20)
    g = gradient_flow(m, random_sample(8, 0, torch.device("cpu")), "t", "trained", batch_size=8)
    assert set(g["lambda"]) == {0.5}


@pytest.mark.parametrize("name", VARIANTS + ["plain14-preact"])
def test_checkpoints_round_trip_with_their_architecture(tmp_path, name):
    m = tiny(name=name, depth=14, width=16)
    p = tmp_path / "m.safetensors"
    save_checkpoint(m, p)
    loaded, info = load_uploaded(p.read_bytes())
    assert info["name"] == name and loaded.name == name
    assert same_state(loaded, state_fingerprint(m))


def test_full_preact_is_recognised_from_its_tensors():
    from safetensors.torch import save_file
    import tempfile, os

    m = tiny(name="resnet14-preact", depth=14, width=16)
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    from analysis.core.checkpoints import infer_arch

    arch, who, _ = infer_arch(state, residual=None, meta={})
    assert who == "the tensors" and arch.unit == "full-preact" and arch.name == "resnet14-preact"
    got = model_from_state(state, arch)
    assert got.unit == "full-preact" and got.name == "resnet14-preact"
    with tempfile.TemporaryDirectory() as d:  # no metadata: the tensors decide the unit, the caller plain/residual
        f = os.path.join(d, "x.safetensors")
        save_file(state, f)
        model, info = load_uploaded(open(f, "rb").read(), residual=True)
    assert info["unit"] == "full-preact"


def test_units_list_is_the_papers_order():
    assert UNITS == ("original", "bn-after-add", "relu-before-add", "relu-preact", "full-preact")
