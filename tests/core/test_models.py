"""The 6n+2 nets: parameter counts and the forward-pass options, against known answers."""

import pytest
import torch
import torch.nn.functional as F

from analysis.core.arch import parse_name
from analysis.core.blocks import option_a
from analysis.core.models import build_model, count_params
from analysis.core.common import same_state, state_fingerprint
from conftest import tiny


def expected_params(depth: int) -> int:
    """Counted from the architecture: stem conv+BN, 3 stages of n blocks (2 convs + 2 BNs), fc."""
    n = (depth - 2) // 6
    total = 3 * 16 * 9 + 2 * 16
    cin = 16
    for w in (16, 32, 64):
        for _ in range(n):
            total += cin * w * 9 + w * w * 9 + 4 * w
            cin = w
    return total + 64 * 10 + 10


@pytest.mark.parametrize("depth,paper_m", [(20, 0.27), (56, 0.85), (110, 1.7)])
def test_parameter_counts(depth, paper_m):
    res, plain = build_model(f"resnet{depth}"), build_model(f"plain{depth}")
    assert count_params(res) == count_params(plain) == expected_params(depth)
    assert round(count_params(res) / 1e6, 2 if depth < 110 else 1) == paper_m  # the paper's rounded figures
    assert res.num_blocks == 3 * (depth - 2) // 6


def test_option_b_adds_projections_only_in_residual_nets():
    b = build_model("resnet20b")
    assert count_params(b) == expected_params(20) + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_names_and_bad_depths():
    a = parse_name("resnet56")
    assert (a.depth, a.residual, a.option, a.unit, a.lam) == (56, True, "A", "original", 1.0)
    a = parse_name("plain110")
    assert (a.depth, a.residual, a.option) == (110, False, "A")
    with pytest.raises(ValueError, match="6n\\+2"):
        parse_name("resnet52")
    with pytest.raises(ValueError):
        parse_name("vgg16")


def test_block_names_are_module_paths():
    m = build_model("resnet20")
    paths = dict(m.named_modules())
    assert m.block_names()[0] == "stage1.block0" and m.block_names()[-1] == "stage3.block2"
    assert all(n in paths for n in m.block_names())
    assert [b.downsample for b in m.block_info] == [False] * 3 + [True, False, False] * 2


def test_zero_bn_block_is_identity_and_skipping_it_changes_nothing():
    m = tiny(residual=True, depth=14)
    i = 1  # stage1.block1, same shape in and out
    with torch.no_grad():
        m.block(i).bn2.weight.zero_()
        m.block(i).bn2.bias.zero_()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        inputs, _ = m.block_inputs(x)
        h = inputs[i]
        assert torch.equal(m.block(i)(h), h)  # h >= 0 after a ReLU, F(h) = 0 exactly
        assert torch.equal(m(x), m(x, skip=[i]))
        assert torch.equal(m(x), m(x, skip=["stage1.block1"]))


def test_skipping_every_block_is_stem_plus_shortcuts():
    m = tiny(residual=True, depth=14)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        h = F.relu(m.stem.bn(m.stem.conv(x)))
        for b in m.block_info:
            if b.downsample:  # option A by hand: every other pixel, channels zero-padded on both sides
                h = h[:, :, ::2, ::2]
                pad = b.planes - b.in_planes
                h = torch.cat([h.new_zeros(h.shape[0], pad // 2, *h.shape[2:]), h,
                               h.new_zeros(h.shape[0], pad - pad // 2, *h.shape[2:])], 1)
        expected = m.fc(h.mean((2, 3)))
        got = m(x, skip=range(m.num_blocks))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_lambda_zero_is_the_plain_net_and_lambda_one_the_residual():
    res, plain = tiny(True, 14), tiny(False, 14)
    plain.load_state_dict(res.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(res(x, scale=0.0), plain(x))
        assert torch.equal(plain(x, scale=1.0), res(x))
        assert not torch.allclose(res(x), plain(x))
        per_block = res(x, scale=[0.0] * res.num_blocks)
        assert torch.equal(per_block, plain(x))


def test_forward_from_cached_input_equals_full_forward():
    m = tiny(True, 20)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        full = m(x)
        inputs, _ = m.block_inputs(x)
        for i in range(m.num_blocks):
            assert torch.equal(m.forward_from(i, inputs[i]), full)
        # with a deletion after the start point too
        assert torch.equal(m.forward_from(2, inputs[2], skip=[4]), m(x, skip=[4]))


def _with_trained_looking_bn(name: str):
    """A seeded net (width 8, eval mode) whose BNs are not the identity: weights, biases and running statistics drawn."""
    torch.manual_seed(0)
    m = build_model(name, width=8).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2)
    return m


@pytest.mark.parametrize("name", ["plain20", "resnet20", "resnet20-preact", "resnet20-bnafter", "resnet20-relubefore",
                                  "resnet20-scale0.5f", "resnet20-gate-2", "resnet20b", "resnet29-bottleneck-preact",
                                  "resnet20-dropout0.5"])
def test_a_blocks_parts_are_its_own_pass(name):
    """``Block.parts``: the responses, the branch as added, the shortcut and the output of one pass, each equal to the
    block's own method (the responses analysis measures from it instead of running the branch three times)."""
    m = _with_trained_looking_bn(name)
    with torch.no_grad():
        h = m.stem_forward(torch.randn(3, 3, 32, 32))
        for _, blk in m.blocks():
            rs, f, s, out = blk.parts(h)
            assert all(torch.equal(a, b) for a, b in zip(rs, blk.branch_responses(h))) and len(rs) == blk.k
            assert torch.equal(f, blk.branch(h)) and torch.equal(s, blk.shortcut(h))
            assert torch.equal(out, blk(h))
            h = out


@pytest.mark.parametrize("name", ["plain20", "resnet20", "resnet20-preact", "resnet20-bnafter", "resnet20-relubefore",
                                  "resnet20-relupreact", "resnet20-scale0.5f", "resnet20-gate-2", "resnet20b",
                                  "resnet20-conv1x1", "resnet29-bottleneck", "resnet29-bottleneck-preact"])
def test_folding_batchnorm_keeps_the_function_and_the_original(name):
    """Every BN that follows a conv folded into it: the same logits in float32 (also with a block deleted and with two
    blocks swapped); the BNs that cannot fold (after the addition, before a conv) stay; the model copied is unchanged."""
    from analysis.core.blocks import fold_batchnorm
    from analysis.core.common import private_copy

    m = _with_trained_looking_bn(name)
    before = state_fingerprint(m)
    f = fold_batchnorm(private_copy(m))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        for kw in ({}, {"skip": [1]}):
            want, got = m(x, **kw), f(x, **kw)
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item()), (kw, (got - want).abs().max())
        h = m.stem_forward(x)
        order = [0, 2, 1] + list(range(3, m.num_blocks))
        assert torch.allclose(f.forward_from(0, f.stem_forward(x), order=order), m.forward_from(0, h, order=order),
                              rtol=1e-4, atol=1e-4)
    left = [n for n, mod in f.named_modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    unit = m.block(1).unit
    want_left = {"bn-after-add": m.num_blocks, "full-preact": m.num_blocks - 1}.get(unit, 0)  # bn{k}; bn0 (not block 0)
    assert len(left) == want_left + (1 if m.post is not None and isinstance(m.post[0], torch.nn.BatchNorm2d) else 0), left
    assert same_state(m, before)


def test_a_folded_copy_stays_on_the_nets_device_and_dtype():
    """The folded convs are made where the net is (a GPU net's folded copy, for the deletion sweeps, stays on the GPU):
    checked on the meta device, which, like a GPU, is not where a new module lands by default."""
    from analysis.core.blocks import fold_batchnorm

    m = tiny(True, 14).to("meta", torch.float64)
    f = fold_batchnorm(m)
    assert {(p.device.type, p.dtype) for p in f.parameters()} == {("meta", torch.float64)}


def test_forward_options_never_mutate_the_module():
    m = tiny(True, 14)
    saved = state_fingerprint(m)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        m(x, skip=[0, 3], scale=0.5)
        m.forward_from(0, m.block_inputs(x)[0][0], order=[1, 0, 2, 3, 4, 5])
    assert same_state(m, saved) and not m.training


def test_option_a_pads_channels_with_zeros():
    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).view(2, 4, 4, 4)
    y = option_a(x, 8, 2)
    assert y.shape == (2, 8, 2, 2)
    assert torch.equal(y[:, 2:6], x[:, :, ::2, ::2])
    assert y[:, :2].abs().sum() == 0 and y[:, 6:].abs().sum() == 0


@pytest.mark.parametrize("name", ["plain20", "resnet20", "resnet20-scale0.5", "resnet20-scale0.5f", "resnet20-gate-2",
                                  "resnet20-shortgate-2", "resnet20b", "resnet20-conv1x1", "resnet20-preact",
                                  "resnet20-bnafter", "resnet29-bottleneck", "resnet20-dropout0.5"])
def test_the_fused_inference_copy_is_the_folded_net_up_to_bfloat16_rounding(name):
    """``fuse_for_inference``: each conv with its ReLU, and an original unit's last conv with the shortcut's addition,
    in one oneDNN call. Against the folded copy run op by op in the same bfloat16 autocast: the logits within bfloat16
    rounding (intact, a block deleted, two blocks swapped, a cached input); the blocks it must not fuse (a branch scale
    or an exclusive gate before the addition, other units) stay as they were; the folded copy is unchanged."""
    import copy

    from analysis.core.blocks import fold_batchnorm
    from analysis.core.common import private_copy
    from analysis.core.fused import FusedBlock, FusedConv, fuse_for_inference, fusable

    m = _with_trained_looking_bn(name)
    folded = fold_batchnorm(private_copy(m))
    for mod in folded.modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.to(torch.bfloat16)
    before = state_fingerprint(folded)
    want_fused = [fusable(b) for _, b in folded.blocks()]
    fused = fuse_for_inference(copy.deepcopy(folded))
    assert same_state(folded, before)
    assert [isinstance(b, FusedBlock) for _, b in fused.blocks()] == want_fused
    unit, lam_f = m.block(1).unit, m.block(1).branch_scale
    exclusive = m.block(1).gate is not None and m.block(1).gate_kind == "exclusive"
    assert any(want_fused) == (unit == "original" and lam_f == 1.0 and not exclusive)
    assert isinstance(fused.stem.conv, FusedConv)
    x = torch.randn(6, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    order = [0, 2, 1] + list(range(3, m.num_blocks))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for kw in ({}, {"skip": [1]}, {"skip": [0, 4]}):
            want, got = folded(x, **kw).float(), fused(x, **kw).float()
            assert (got - want).abs().max() <= 0.02 * want.abs().max(), (kw, (got - want).abs().max() / want.abs().max())
        h = folded.stem_forward(x)
        want = folded.forward_from(1, folded.run_blocks(h, stop=1)[0], order=order).float()
        got = fused.forward_from(1, fused.run_blocks(fused.stem_forward(x), stop=1)[0], order=order).float()
        assert (got - want).abs().max() <= 0.02 * want.abs().max()
    if any(want_fused):
        blk = next(b for _, b in fused.blocks() if isinstance(b, FusedBlock))
        with pytest.raises(NotImplementedError, match="whole blocks"):
            blk.branch(h)


def test_a_fused_conv_without_the_onednn_op_runs_the_same_steps_one_by_one():
    """Where oneDNN's fused op is missing (another build, a GPU) :class:`FusedConv` runs conv, addition and ReLU one
    by one: exactly what the unfused layers compute."""
    from analysis.core.fused import FusedConv

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, bias=True)
    x, s = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    f = FusedConv(conv)
    f.op = None
    with torch.no_grad():
        assert torch.equal(f(x), torch.relu(conv(x))) and torch.equal(f(x, s), torch.relu(conv(x) + s))
        g = FusedConv(conv)  # float32 weights: the op is for bfloat16 only, so the same steps
        assert torch.equal(g(x, s), torch.relu(conv(x) + s))
